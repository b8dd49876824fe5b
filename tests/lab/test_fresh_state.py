"""The lab scripts from no state at all, as on a machine that never ran a lab.

A fresh machine has no /run/netns, no pid files, no bridges, no lab folders. A lab that ran
before hides that path (issue 6: `multilab.sh down` exited 2 on a fresh machine, so every
multi-node test errored there and nowhere else). Here each script runs in private mount,
network and UTS namespaces with empty tmpfs over /run and the lab's data and log folders:
`down` and `status` of both scripts, then a 2-node `up` that starts its own dockerd inside the
sandbox, then `down` again. Nothing of this machine's own lab is seen or touched.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.labkit import ROOT

UNSHARE = ("unshare", "--mount", "--net", "--uts", "--propagation", "private", "--")
SANDBOX = r"""
set -euo pipefail
for d in /run /var/lib/docker /var/lib/swarm-medic-lab /var/lib/medic /var/log/swarm-medic-lab; do
  mkdir -p "$d"; mount -t tmpfs fresh "$d"
done
ip link set lo up
[ ! -e /run/netns ] || { echo "sandbox is not empty"; exit 9; }
export MULTILAB_CGROUP=medic-fresh
# whatever fails below, the sandbox's own engines must not outlive it (nobody could reach them)
trap 'bash scripts/multilab.sh down >/dev/null 2>&1; bash scripts/lab.sh down >/dev/null 2>&1' EXIT
for s in lab multilab; do
  bash scripts/$s.sh down
  bash scripts/$s.sh status
done
echo "== from nothing: up"
N=2 bash scripts/multilab.sh up
bash scripts/multilab.sh status
echo "== down twice (the second finds nothing)"
bash scripts/multilab.sh down
bash scripts/multilab.sh down
bash scripts/lab.sh down
bash scripts/lab.sh down
ls /run/netns | grep -c medic- && { echo "namespaces left behind"; exit 8; }
echo "== fresh-state sandbox done"
"""


@pytest.mark.lab
def test_lab_scripts_work_from_no_state_at_all(lab_up: None) -> None:
    done = subprocess.run(
        [*UNSHARE, "bash", "-c", SANDBOX],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "no multi-node lab" in out
    assert "2-node swarm ready" in out
    assert "== fresh-state sandbox done" in out
