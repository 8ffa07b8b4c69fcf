"""Integer shape rules of TensorFlow's convolutions, one spatial dim at a time.

Notation: n input size, k kernel size, s stride, d dilation, pad either
"SAME", "VALID" or an explicit (before, after) pair. For a transposed
convolution n is the size of its input and O the size of its output; the
transposed op is valid exactly when the forward convolution maps O to n.
"""


def effective_kernel(k, d):
    """k_eff = (k - 1) * d + 1: the span of a dilated kernel."""
    return (k - 1) * d + 1


def same_pads(n, k, s, d):
    """SAME pads of a forward conv: total = max(0, (ceil(n/s)-1)*s + k_eff - n),
    split with the odd unit after."""
    out = -(-n // s)
    total = max(0, (out - 1) * s + effective_kernel(k, d) - n)
    return total // 2, total - total // 2


def forward_size(n, k, s, d, pad):
    """Forward output size: SAME ceil(n/s); VALID/explicit (n+pb+pa-k_eff)//s + 1.

    Returns None when the padded input m = n + pb + pa is shorter than k_eff
    (no window fits); callers turn that into a ShapeError.
    """
    if pad == "SAME":
        return -(-n // s)
    pb, pa = (0, 0) if pad == "VALID" else pad
    m = n + pb + pa
    ke = effective_kernel(k, d)
    if m < ke:
        return None
    return (m - ke) // s + 1


def forward_pads(n, k, s, d, pad):
    """(before, after) pads of a forward conv."""
    if pad == "SAME":
        return same_pads(n, k, s, d)
    if pad == "VALID":
        return 0, 0
    return tuple(pad)


def transpose_sizes(n, k, s, d, pad):
    """Every valid transposed output size O, smallest first.

    n >= 1: s consecutive values starting at
      SAME (n-1)*s + 1;  VALID (n-1)*s + k_eff;  explicit (n-1)*s + k_eff - pb - pa
    (negative values dropped). n == 0 follows TF's truncating size rule
    (n_fwd = trunc((m - k_eff + s) / s)): SAME admits only 0, VALID/explicit
    admit k_eff - 2s < O + pb + pa < k_eff.
    """
    ke = effective_kernel(k, d)
    if pad == "SAME":
        lo = (n - 1) * s + 1 if n > 0 else 0
        return list(range(lo, n * s + 1)) if n > 0 else [0]
    pb, pa = (0, 0) if pad == "VALID" else pad
    if n > 0:
        lo = (n - 1) * s + ke - pb - pa
        return [o for o in range(lo, lo + s) if o >= 0]
    return [o for o in range(0, ke) if ke - 2 * s < o + pb + pa < ke]


def natural_transpose_size(n, k, s, d, pad):
    """output_shape=None: Keras' size for SAME (n*s) and VALID
    (n*s + max(k_eff - s, 0)); the smallest valid size for explicit pads."""
    if pad == "SAME":
        return n * s
    if pad == "VALID":
        return n * s + max(effective_kernel(k, d) - s, 0)
    sizes = transpose_sizes(n, k, s, d, pad)
    return sizes[0] if sizes else None


def transpose_pad_before(n, o, k, s, d, pad):
    """How much the transposed op crops from the start of the un-cropped
    result of length (n-1)*s + k_eff: SAME total//2, VALID 0, explicit pb."""
    if pad == "SAME":
        return max(0, (n - 1) * s + effective_kernel(k, d) - o) // 2
    if pad == "VALID":
        return 0
    return pad[0]
