#!/usr/bin/env python3
"""Assembles a single-layer container image as an OCI image layout, without a container
engine: the files given become one gzip layer, and the config names the entrypoint, user
and platform (linux and this machine's architecture). The output is deterministic (sorted entries, zero timestamps,
root-owned files), so the same inputs always give the same manifest digest: the digest can
be written into an image catalog before the image is pushed anywhere.

    oci-image.py --out DIR --name REF --entrypoint /usr/local/bin/x [--user 65534:65534]
                 [--env K=V]... FILE_SPEC...

FILE_SPEC is SRC:DEST (DEST is an absolute path in the image; mode kept from SRC), or
@DIR:DEST for a directory tree, or +DEST for an empty directory (mode 1777 for /tmp,
0755 otherwise). Prints the manifest digest on stdout. Push the layout with
`crane push DIR REF`, or import it into containerd with `ctr images import` of its tar.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import sys
import tarfile


def add_parents(entries, dest):
    parts = dest.strip("/").split("/")[:-1]
    for i in range(1, len(parts) + 1):
        path = "/".join(parts[:i])
        entries.setdefault(path, ("dir", None, 0o755))


def collect(specs):
    """Maps each path in the image (no leading slash) to (kind, source, mode)."""
    entries = {}
    for spec in specs:
        if spec.startswith("+"):
            dest = spec[1:]
            add_parents(entries, dest + "/x")
            entries[dest.strip("/")] = ("dir", None, 0o1777 if dest.rstrip("/") == "/tmp" else 0o755)
            continue
        tree = spec.startswith("@")
        src, sep, dest = spec.lstrip("@").partition(":")
        if not sep or not dest.startswith("/"):
            sys.exit(f"oci-image: {spec!r}: expected SRC:/DEST")
        if tree:
            for root, dirs, files in os.walk(src):
                dirs.sort()
                rel = os.path.relpath(root, src)
                base = dest.rstrip("/") if rel == "." else f"{dest.rstrip('/')}/{rel}"
                add_parents(entries, base + "/x")
                for name in sorted(files):
                    path = os.path.join(root, name)
                    if os.path.islink(path):
                        path = os.path.realpath(path)
                    entries[f"{base}/{name}".strip("/")] = ("file", path, os.stat(path).st_mode & 0o777)
        else:
            real = os.path.realpath(src)
            if not os.path.isfile(real):
                sys.exit(f"oci-image: {src} is not a file")
            add_parents(entries, dest)
            entries[dest.strip("/")] = ("file", real, os.stat(real).st_mode & 0o777)
    return entries


def layer_tar(entries):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(entries):
            kind, source, mode = entries[path]
            info = tarfile.TarInfo(path)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = mode
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = os.path.getsize(source)
                with open(source, "rb") as f:
                    tar.addfile(info, f)
    return buffer.getvalue()


# The platform of the binaries packed: this machine's.
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def write_blob(out, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return f"sha256:{digest}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="OCI layout directory to write (replaced)")
    parser.add_argument("--name", required=True, help="image reference recorded in the index")
    parser.add_argument("--entrypoint", required=True, action="append")
    parser.add_argument("--user", default="65534:65534")
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    tar = layer_tar(collect(args.files))
    # mtime=0 keeps the gzip header free of timestamps: same files, same digest.
    compressed = gzip.compress(tar, compresslevel=6, mtime=0)

    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(os.path.join(args.out, "blobs", "sha256"))
    layer_digest = write_blob(args.out, compressed)
    env = ["PATH=/usr/local/bin:/usr/bin:/bin"] + args.env
    config = {
        "architecture": ARCH,
        "os": "linux",
        "config": {"User": args.user, "Entrypoint": args.entrypoint, "Env": env, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(tar).hexdigest()}"]},
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = write_blob(args.out, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": len(compressed)}],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    manifest_digest = write_blob(args.out, manifest_bytes)
    tag = args.name.rsplit(":", 1)[1] if ":" in args.name.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": len(manifest_bytes),
            "platform": {"architecture": ARCH, "os": "linux"},
            "annotations": {"io.containerd.image.name": args.name, "org.opencontainers.image.ref.name": tag},
        }],
    }
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump(index, f, sort_keys=True, separators=(",", ":"))
    with open(os.path.join(args.out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    print(manifest_digest)


if __name__ == "__main__":
    main()
