"""Shape rules written independently of fastdeconv, straight from
SEMANTICS.md sections 1.2 and 2.2 (one spatial dim at a time).

Tests use these to pick valid geometry and to predict shapes, so that a bug
in fastdeconv's own shape code cannot hide behind itself. `padding` is
"SAME", "VALID" or an explicit (before, after) pair.
"""


def k_eff(k, d):
    return (k - 1) * d + 1


def same_pads(n, k, s, d):
    out = -(-n // s)
    total = max(0, (out - 1) * s + k_eff(k, d) - n)
    return total // 2, total - total // 2


def forward_pads(n, k, s, d, padding):
    if padding == "SAME":
        return same_pads(n, k, s, d)
    if padding == "VALID":
        return 0, 0
    return tuple(padding)


def forward_out(n, k, s, d, padding):
    """Forward output size, or None when no window fits (m < k_eff)."""
    if padding == "SAME":
        return -(-n // s)
    pb, pa = forward_pads(n, k, s, d, padding)
    m = n + pb + pa
    if m < k_eff(k, d):
        return None
    return (m - k_eff(k, d)) // s + 1


def tf_forward_size_truncating(o, k, s, d, padding):
    """TF's own integer rule (GetWindowedOutputSizeVerbose): C++ truncating
    division; used to decide which transposed sizes TF accepts."""
    if padding == "SAME":
        return (o + s - 1) // s
    pb, pa = forward_pads(o, k, s, d, padding)
    num = o + pb + pa - k_eff(k, d) + s
    q = abs(num) // s
    return q if num >= 0 else -q


def transpose_sizes(n, k, s, d, padding):
    """Every O that TF's rule maps back to n (SEMANTICS 2.2-2.3), found by
    brute force over candidate sizes rather than by the closed form."""
    top = (n + 1) * s + k_eff(k, d) + 2
    return [o for o in range(0, top) if tf_forward_size_truncating(o, k, s, d, padding) == n]


def transpose_pad_before(n, o, k, s, d, padding):
    if padding == "SAME":
        return max(0, (n - 1) * s + k_eff(k, d) - o) // 2
    if padding == "VALID":
        return 0
    return padding[0]


def natural_transpose_size(n, k, s, d, padding):
    """output_shape=None (SPEC): SAME n*s, VALID n*s + max(k_eff - s, 0),
    explicit: the smallest valid size."""
    if padding == "SAME":
        return n * s
    if padding == "VALID":
        return n * s + max(k_eff(k, d) - s, 0)
    sizes = transpose_sizes(n, k, s, d, padding)
    return sizes[0] if sizes else None


def per_dim(padding, i):
    """The padding of spatial dim i: a string, or the i-th pair."""
    return padding if isinstance(padding, str) else tuple(padding[i])
