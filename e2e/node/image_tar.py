#!/usr/bin/env python3
"""Makes a one-layer container image as a `docker save` tarball, without a
daemon or a registry, for `ctr images import` on the local node.

    image_tar.py OUT.tar NAME:TAG --entrypoint JSON [--user UID:GID] SRC:DEST[:MODE]...

The layer holds exactly the files given (and their directories), owned by
root, with fixed timestamps: the same inputs give the same image ID.
"""

import argparse
import hashlib
import io
import json
import os
import tarfile


def layer(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for _, dest, _ in files:
            parts = dest.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        # /tmp for programs that want one, even under a read-only root.
        info = tarfile.TarInfo("tmp")
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o1777, 0
        tar.addfile(info)
        for src, dest, mode in files:
            data = open(src, "rb").read()
            info = tarfile.TarInfo(dest.strip("/"))
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("ref")
    ap.add_argument("--entrypoint", required=True, help="JSON list")
    ap.add_argument("--user", default="")
    ap.add_argument("files", nargs="+", help="SRC:DEST[:MODE]")
    a = ap.parse_args()
    files = []
    for f in a.files:
        src, dest, *mode = f.split(":")
        files.append((src, dest, int(mode[0], 8) if mode else 0o755))
    blob = layer(files)
    diff_id = "sha256:" + hashlib.sha256(blob).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": json.loads(a.entrypoint), "User": a.user, "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "e2e/node/image_tar.py"}],
    }
    cfg = json.dumps(config, sort_keys=True).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    layer_dir = diff_id.split(":")[1]
    manifest = [{"Config": cfg_name, "RepoTags": [a.ref], "Layers": [layer_dir + "/layer.tar"]}]
    tmp = a.out + ".tmp"
    with tarfile.open(tmp, "w") as tar:
        for name, data in [
            (cfg_name, cfg),
            (layer_dir + "/layer.tar", blob),
            ("manifest.json", json.dumps(manifest).encode()),
        ]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
