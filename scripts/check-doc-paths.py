#!/usr/bin/env python3
"""Lists path-looking references in README.md and docs/*.md that match no file in the
repository (or in shared/ beside it). Exit status 1 when there is one."""
import glob, os, re, subprocess, sys
os.chdir(sys.argv[1] if len(sys.argv) > 1 else ".")
files = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True).stdout.split()
paths = set(files)
for f in files:
    parts = f.split("/")
    for i in range(1, len(parts)):
        paths.add("/".join(parts[:i]))
def known(t):
    t = t.rstrip("/")
    if t.startswith("./"):
        t = t[2:]
    if t == "shared" or t.startswith("shared/"):
        # shared/ lives beside the repository (or at $MARU_SHARED_DIR); where it is
        # absent (a bare CI checkout) its paths cannot be checked, so they pass.
        shared = os.environ.get("MARU_SHARED_DIR") or os.path.join("..", "shared")
        if not os.path.isdir(shared):
            return True
        return os.path.exists(os.path.join(shared, t[len("shared/"):]) if "/" in t else shared)
    return t in paths or any(p.endswith("/" + t) for p in paths)
# Paths on a running system, in other repositories, or made by a build: not this repository's files.
foreign = re.compile(
    r"^(bus|devices|dax_region|ram|pmem|mapping0|DIR|\.\.\.|mnt|kv|a/b|target|out|\.cache"
    r"|maru/_native|lmcache|tests/v1|hosts|keys|acks|tests/e2e-qemu/(out|\.cache))(/|$)"
    r"|N(/|$)|\d+/\d+$"
    # Files inside the captured snapshots, systemd settings, xattr families.
    r"|^(daxctl_list_DR\.json|cxl_list_vvv\.json|node_meminfo\.txt)$|^Protect|^user\.maru\."
)
docs = ["README.md"] + sorted(glob.glob("docs/*.md")) + sorted(glob.glob("*/README.md"))
tok = re.compile(r"`([^`\s]+)`|\]\(([^)\s#]+)")
ext = re.compile(r"\.(md|rs|py|sh|ya?ml|h|toml|c|json|txt|gz|service|rules)$")
bad = 0
for doc in docs:
    for n, line in enumerate(open(doc), 1):
        for m in tok.finditer(line):
            t = (m.group(1) or m.group(2)).rstrip(".,:;)").split(":")[0]
            if t.startswith(("http", "/", "$", "~", "-", "<")) or re.search(r"[*<{]", t):
                continue
            if not ("/" in t or ext.search(t)) or not re.match(r"^[\w.\-/]+$", t):
                continue
            if foreign.search(t) or known(t):
                continue
            print(f"{doc}:{n}: {t}")
            bad += 1
sys.exit(1 if bad else 0)
