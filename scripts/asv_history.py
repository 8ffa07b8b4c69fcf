"""Benchmark a range of commits with asv, offline, and build the dashboard.

    python scripts/asv_history.py                      # last 4 commits that changed fastdeconv/
    python scripts/asv_history.py --last 8 --quick     # one sample per benchmark (faster)
    python scripts/asv_history.py --commits 9c79d00 ca938b5 HEAD --bench "Ops.track_gflops"
    python scripts/asv_history.py --publish-only --serve

asv's "existing" environment (asv_bench/asv.conf.json) installs nothing and
refuses commit ranges, so each commit is checked out with `git worktree`
and benchmarked with `asv run --python=same --set-commit-hash SHA`, with
ASV_PYTHONPATH pointing at the worktree: asv hands it to the benchmark
processes as PYTHONPATH, so they import that commit's fastdeconv ahead of
the installed one. The benchmark files themselves are today's (as asv
always does); they skip what an old commit lacks. Then `asv publish`
writes the HTML and the path is printed; `--serve` serves it on
127.0.0.1 only.

Results (asv_bench/results) and the HTML (asv_bench/html) are not
committed (see .gitignore); they accumulate across runs, so re-running
with new commits extends the history.
"""

import argparse
import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASV_DIR = ROOT / "asv_bench"


def sh(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def git(*args):
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def asv_exe():
    """asv from this interpreter's environment."""
    here = Path(sys.executable).parent / "asv"
    return [str(here)] if here.exists() else [sys.executable, "-m", "asv"]


def pick_commits(args):
    if args.commits:
        return [git("rev-parse", "--verify", f"{c}^{{commit}}") for c in args.commits]
    # Commits on the first-parent line that changed the package, oldest first.
    shas = git("rev-list", "--first-parent", f"--max-count={args.last}", "HEAD", "--", "fastdeconv").split()
    return list(reversed(shas))


def ensure_machine():
    if not (Path.home() / ".asv-machine.json").exists():
        sh(asv_exe() + ["machine", "--yes"], cwd=ASV_DIR)


def run_commit(sha, args, workdir):
    tree = Path(workdir) / sha[:12]
    if tree.exists():
        sh(["git", "-C", ROOT, "worktree", "remove", "--force", tree])
    sh(["git", "-C", ROOT, "worktree", "add", "--detach", "--force", tree, sha], stdout=subprocess.DEVNULL)
    try:
        env = dict(os.environ, ASV_PYTHONPATH=str(tree))
        cmd = asv_exe() + ["run", "--python=same", "--set-commit-hash", sha, "--show-stderr"]
        if args.quick:
            cmd.append("--quick")
        for b in args.bench or []:
            cmd += ["--bench", b]
        t0 = time.time()
        proc = subprocess.run(cmd, cwd=ASV_DIR, env=env)
        print(f"# {sha[:10]}: asv exited {proc.returncode} after {time.time() - t0:.0f} s", flush=True)
        return proc.returncode
    finally:
        if not args.keep_worktrees:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def serve(html, port):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        print(f"serving {html} at http://127.0.0.1:{port}/ (Ctrl-C to stop)", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--commits", nargs="+", metavar="REV", help="commits to benchmark (any git revision)")
    p.add_argument("--last", type=int, default=4,
                   help="without --commits: the last N first-parent commits that changed fastdeconv/ (default 4)")
    p.add_argument("--bench", action="append", metavar="REGEX", help="only benchmarks matching (repeatable)")
    p.add_argument("--quick", action="store_true", help="asv --quick: one sample per benchmark")
    p.add_argument("--publish-only", action="store_true", help="skip running; just build the HTML")
    p.add_argument("--keep-worktrees", action="store_true")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "fastdeconv-asv-worktrees"))
    p.add_argument("--serve", action="store_true", help="serve the HTML on 127.0.0.1 afterwards")
    p.add_argument("--port", type=int, default=8080)
    args = p.parse_args(argv)

    if shutil.which("git") is None:
        sys.exit("git is needed")
    ensure_machine()
    failures = []
    if not args.publish_only:
        commits = pick_commits(args)
        print(f"# benchmarking {len(commits)} commits: {' '.join(c[:10] for c in commits)}", flush=True)
        os.makedirs(args.workdir, exist_ok=True)
        for sha in commits:
            if run_commit(sha, args, args.workdir):
                failures.append(sha[:10])
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=False)
    sh(asv_exe() + ["publish"], cwd=ASV_DIR)
    html = ASV_DIR / "html"
    index = html / "index.html"
    if not index.exists():
        sys.exit(f"asv publish did not write {index}")
    print(f"\ndashboard: {index}")
    print(f"serve it locally: python -m http.server --bind 127.0.0.1 --directory {html} {args.port}"
          f"  (or add --serve)")
    if failures:
        print(f"asv reported failures for: {' '.join(failures)} (benchmarks an old commit cannot run show as "
              f"n/a; see the log above)")
    if args.serve:
        serve(html, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
