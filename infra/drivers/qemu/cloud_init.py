"""Cloud-init seeds for QEMU VMs: the NoCloud ISO that gives a guest its name and SSH keys.

QemuDriver builds one per VM at `ensure` and uploads it as `seed.iso` in the VM's folder.
"""

from __future__ import annotations

import io
import json

import pycdlib


def build_seed_iso(instance_id: str, hostname: str, ssh_keys: tuple[str, ...]) -> bytes:
    """A cloud-init NoCloud seed: an ISO 9660 volume `cidata` with user-data and meta-data.

    Both files are JSON (which YAML reads), so no key or id can break their syntax.
    """
    user_data = "#cloud-config\n" + json.dumps(
        {"hostname": hostname, "ssh_authorized_keys": list(ssh_keys)}, indent=2
    )
    meta_data = json.dumps({"instance-id": instance_id, "local-hostname": hostname}, indent=2)
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for iso_name, name, text in (
        ("/USERDATA.;1", "user-data", user_data),
        ("/METADATA.;1", "meta-data", meta_data),
    ):
        data = (text + "\n").encode()
        iso.add_fp(io.BytesIO(data), len(data), iso_name, rr_name=name, joliet_path=f"/{name}")
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()
