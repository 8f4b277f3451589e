"""Every YAML in cluster/ is checked offline, without cloud credentials.

Launcher configs (those with `provider:`) go through Ray's own `prepare_config` (merges
the provider's defaults.yaml, the setup commands, per-type worker counts; for
`type: aws` it reads only files, no AWS call — `ray up` reaches AWS later, in
`bootstrap_config`) and `validate_config` (Ray's JSON schema).  Then what the schema
cannot see: GPUs declared on GPU worker types, none on the head, the install step at the
pinned versions, and no dashboard/MLflow port reachable from outside.  KubeRay manifests
get a structural check.
"""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
YAMLS = sorted(CLUSTER.glob("*.yaml"))
GPU_INSTANCES = {"g5.2xlarge": 1, "g5.12xlarge": 4, "p4d.24xlarge": 8, "g6e.xlarge": 1, "g6e.12xlarge": 4}
PRIVATE_PORTS = {8265, 5000}


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _launcher_configs():
    return [p for p in YAMLS if any("provider" in d for d in _docs(p))]


def _torch_pin() -> str:
    """The torch version the Makefile installs (the project's single torch pin)."""
    m = re.search(r"torch==([0-9][\w.+]*)", (ROOT / "Makefile").read_text())
    assert m, "Makefile: no 'torch==<version>' install line"
    return m.group(1)


def _prepared(path: Path) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load(path.read_text())
    cfg = prepare_config(copy.deepcopy(raw))
    validate_config(cfg)
    return cfg


def test_cluster_dir_has_launcher_and_kuberay_configs():
    names = {p.name for p in YAMLS}
    assert {"gpu.yaml", "kuberay.yaml"} <= names
    assert [p.name for p in _launcher_configs()] == ["gpu.yaml"]


@pytest.mark.parametrize("path", _launcher_configs(), ids=lambda p: p.name)
def test_launcher_config_passes_rays_own_validation(path):
    cfg = _prepared(path)
    assert cfg["provider"]["type"] == "aws"
    assert cfg["head_node_type"] in cfg["available_node_types"]
    assert 0 < cfg["idle_timeout_minutes"] <= 30


def test_validation_catches_a_broken_config():
    """The schema check is live: an unknown key in a node type is rejected."""
    from jsonschema import ValidationError
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((CLUSTER / "gpu.yaml").read_text())
    raw["available_node_types"]["gpu-1x-a10g"]["gpus"] = 1
    with pytest.raises(ValidationError):
        validate_config(prepare_config(raw))


@pytest.mark.parametrize("path", _launcher_configs(), ids=lambda p: p.name)
def test_gpu_worker_types_declare_their_gpus_and_head_declares_none(path):
    cfg = _prepared(path)
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"].get("GPU") == 0, "head must declare GPU: 0"
    assert head["max_workers"] == 0
    gpu_types = {n: t for n, t in types.items() if t["node_config"]["InstanceType"] in GPU_INSTANCES}
    counts = {GPU_INSTANCES[t["node_config"]["InstanceType"]] for t in gpu_types.values()}
    assert 1 in counts and max(counts) > 1, "need a single-GPU and a multi-GPU worker type"
    for name, t in gpu_types.items():
        want = GPU_INSTANCES[t["node_config"]["InstanceType"]]
        assert t["resources"].get("GPU") == want, f"{name}: declare GPU: {want} explicitly"
        assert t["min_workers"] == 0 and t["max_workers"] >= 1, f"{name}: autoscale from zero"
    assert any(t["node_config"].get("InstanceMarketOptions", {}).get("MarketType") == "spot"
               for t in gpu_types.values())
    for name, t in types.items():  # CPU-only types never advertise GPUs
        if name not in gpu_types:
            assert t["resources"].get("GPU", 0) == 0, name
    # The head's ray start agrees with its declared resources.
    start = " ".join(cfg["head_start_ray_commands"])
    assert "--num-gpus=0" in start


@pytest.mark.parametrize("path", _launcher_configs(), ids=lambda p: p.name)
def test_every_node_installs_the_project_at_the_pinned_versions(path):
    import ray

    cfg = _prepared(path)
    pin = _torch_pin()
    for key in ("head_setup_commands", "worker_setup_commands"):
        cmds = " && ".join(cfg[key])
        assert re.search(rf"pip install .*torch=={re.escape(pin)}\b.*-c constraints\.txt.*-e \.", cmds), (
            f"{key}: expected 'pip install torch=={pin} -c constraints.txt -e .'"
        )
        assert "cd ~/cmr-ray" in cmds
    # The project is what gets copied to ~/cmr-ray, and the image's Ray is ours.
    mounts = cfg["file_mounts"]
    for needed in ("pyproject.toml", "constraints.txt", "cmr_ray"):
        assert mounts.get(f"~/cmr-ray/{needed}") == f"./{needed}"
    for local in mounts.values():  # relative to the repository root, where `ray up` runs
        assert not local.startswith(("/", "..")) and ".venv" not in local, local
        assert (ROOT / local).exists(), f"file_mounts: {local} is missing; `ray up` would fail"
    assert "sudo chown" in cfg["setup_commands"][0], "the install needs a writable ~/cmr-ray"
    image = cfg["docker"]["image"]
    assert f":{ray.__version__}-py311-" in image, f"{image}: not Ray {ray.__version__} on Python 3.11"
    constraints = ROOT / "constraints.txt"
    if constraints.exists():  # the pins the setup step installs agree with the image
        pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", constraints.read_text(), re.M))
        assert pins.get("ray", ray.__version__) == ray.__version__
        assert pins.get("torch", pin) == pin


def _opens_to_world(rule: dict) -> bool:
    cidrs = [r.get("CidrIp") for r in rule.get("IpRanges", [])] + [
        r.get("CidrIpv6") for r in rule.get("Ipv6Ranges", [])
    ]
    return any(c in ("0.0.0.0/0", "::/0") for c in cidrs)


@pytest.mark.parametrize("path", _launcher_configs(), ids=lambda p: p.name)
def test_dashboard_and_mlflow_are_not_reachable_from_outside(path):
    cfg = _prepared(path)
    for rule in cfg["provider"].get("security_group", {}).get("IpPermissions", []):
        lo, hi = rule.get("FromPort", -1), rule.get("ToPort", -1)
        ports = set(range(0, 65536)) if lo == -1 else set(range(lo, hi + 1))
        assert not (ports & PRIVATE_PORTS), f"security group opens {sorted(ports & PRIVATE_PORTS)}"
        assert not (_opens_to_world(rule) and ports != {22}), "only SSH may face the world"
    for nt in cfg["available_node_types"].values():
        assert "SecurityGroupIds" not in nt["node_config"] or nt["node_config"]["SecurityGroupIds"]
    cmds = cfg["head_start_ray_commands"]
    ray_start = [c for c in cmds if "ray start --head" in c]
    assert len(ray_start) == 1 and "--dashboard-host=127.0.0.1" in ray_start[0], "dashboard on loopback only"
    mlflow = [c for c in cmds if "mlflow server" in c]
    assert len(mlflow) == 1, "the head starts one MLflow tracking server"
    # MLflow may listen beyond loopback (worker nodes log to it) only because the checks
    # above keep port 5000 out of every inbound rule: reachable from cluster nodes only.
    assert re.search(r"--host (127\.0\.0\.1|0\.0\.0\.0) --port 5000\b", mlflow[0])
    assert cmds.index(mlflow[0]) < cmds.index(ray_start[0]), "MLflow up before jobs can start"
    assert "export MLFLOW_TRACKING_URI=" in ray_start[0], "jobs learn the tracking URI from Ray's env"
    assert re.search(r"--backend-store-uri (sqlite|postgresql)", mlflow[0]), "MLflow needs a database"
    assert "--artifacts-destination s3://" in mlflow[0]
    for opt in cfg["docker"].get("run_options", []) + cfg["docker"].get("head_run_options", []):
        assert not re.search(r"(^|\s)(-p|--publish)\b", opt), f"docker publishes a port: {opt}"


def test_configure_script_fills_the_placeholders(tmp_path):
    bash = shutil.which("bash")
    assert bash
    cfg_path = tmp_path / "gpu.yaml"
    shutil.copy(CLUSTER / "gpu.yaml", cfg_path)
    run = lambda *a: subprocess.run([bash, str(CLUSTER / "configure.sh"), "--config", str(cfg_path), *a],
                                    capture_output=True, text=True)
    bad = run("--bucket", "Not_A_Bucket")
    assert bad.returncode == 2 and "not a valid S3 bucket name" in bad.stderr
    assert cfg_path.read_text() == (CLUSTER / "gpu.yaml").read_text()  # untouched on error
    ok = run("--bucket", "my-cmr-bucket", "--region", "eu-west-1", "--ami", "ami-0123456789abcdef0",
             "--worker-profile", "cmr-s3")
    assert ok.returncode == 0, ok.stderr
    cfg = _prepared(cfg_path)
    assert "CMR_" not in json.dumps(cfg), "a placeholder is left"
    assert cfg["provider"]["region"] == "eu-west-1"
    assert "s3://my-cmr-bucket/mlflow-artifacts" in " ".join(cfg["head_start_ray_commands"])
    for nt in cfg["available_node_types"].values():
        assert nt["node_config"]["ImageId"] == "ami-0123456789abcdef0"
        if nt is not cfg["available_node_types"][cfg["head_node_type"]]:
            assert nt["node_config"]["IamInstanceProfile"] == {"Name": "cmr-s3"}


def test_shipped_gpu_yaml_uses_one_ami_for_every_node():
    cfg = yaml.safe_load((CLUSTER / "gpu.yaml").read_text())
    amis = {t["node_config"]["ImageId"] for t in cfg["available_node_types"].values()}
    assert len(amis) == 1
    (ami,) = amis
    assert ami.startswith("resolve:ssm:/aws/service/deeplearning/") or re.fullmatch(r"ami-[0-9a-f]+", ami)


# ---- KubeRay ----------------------------------------------------------------------


def _raycluster() -> dict:
    docs = _docs(CLUSTER / "kuberay.yaml")
    rc = [d for d in docs if d.get("kind") in ("RayCluster", "RayJob")]
    assert len(rc) == 1, "kuberay.yaml: expected one RayCluster or RayJob"
    d = rc[0]
    assert d["apiVersion"] == "ray.io/v1"
    return d["spec"]["rayClusterSpec"] if d["kind"] == "RayJob" else d["spec"]


def _containers(group: dict) -> list[dict]:
    return group["template"]["spec"]["containers"]


def test_kuberay_head_takes_no_gpu_work_and_workers_request_gpus():
    import ray

    spec = _raycluster()
    assert spec["rayVersion"] == ray.__version__
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-gpus"] == "0"
    assert head.get("serviceType", "ClusterIP") == "ClusterIP", "the head must not be exposed"
    for c in _containers(head):
        assert "nvidia.com/gpu" not in c.get("resources", {}).get("limits", {})
    gpu_counts = []
    for g in spec["workerGroupSpecs"]:
        limits = _containers(g)[0]["resources"]["limits"]
        if "nvidia.com/gpu" in limits:
            n = int(limits["nvidia.com/gpu"])
            assert n >= 1 and g["minReplicas"] == 0 and g["maxReplicas"] >= 1, g["groupName"]
            assert g["rayStartParams"].get("num-gpus", str(n)) == str(n), g["groupName"]
            gpu_counts.append(n)
        else:
            assert g["rayStartParams"].get("num-gpus") == "0", g["groupName"]
    assert 1 in gpu_counts and max(gpu_counts) > 1


def test_kuberay_image_installs_the_project_at_the_pinned_versions():
    import ray

    spec = _raycluster()
    images = {c["image"] for g in [spec["headGroupSpec"], *spec["workerGroupSpecs"]] for c in _containers(g)}
    assert len(images) == 1, f"every pod runs the same image, got {images}"
    docker = (CLUSTER / "cmr-ray.Dockerfile").read_text()
    assert re.search(rf"^FROM rayproject/ray:{re.escape(ray.__version__)}-py311-", docker, re.M)
    assert re.search(rf"pip install .*torch=={re.escape(_torch_pin())}\b.*-c constraints\.txt.*-e \.", docker)
    mlflow = [c for c in _containers(spec["headGroupSpec"]) if c["name"] == "mlflow"]
    assert len(mlflow) == 1
    cmd = " ".join(mlflow[0]["command"])
    assert "--artifacts-destination s3://" in cmd and "--backend-store-uri sqlite:////mlflow/" in cmd


def test_kuberay_exposes_nothing_outside_the_kubernetes_cluster():
    docs = _docs(CLUSTER / "kuberay.yaml")
    services = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Service"}
    for name, svc in services.items():
        assert svc["spec"].get("type", "ClusterIP") == "ClusterIP", f"Service {name} is exposed"
    assert "Ingress" not in {d.get("kind") for d in docs}
    spec = _raycluster()
    head = _containers(spec["headGroupSpec"])
    mlflow = next(c for c in head if c["name"] == "mlflow")
    cmd = mlflow["command"]
    allowed = cmd[cmd.index("--allowed-hosts") + 1].split(",")  # no Host header but ours
    uri = next(e["value"] for e in head[0]["env"] if e["name"] == "MLFLOW_TRACKING_URI")
    svc = uri.split("//", 1)[1]
    assert svc.split(":")[0] in services and svc in allowed, f"{uri}: not a ClusterIP Service MLflow accepts"
    assert "127.0.0.1:5000" in allowed  # kubectl port-forward
    sel = services[svc.split(":")[0]]["spec"]["selector"]
    assert sel == {"ray.io/cluster": "cmr-ray", "ray.io/node-type": "head"}


def test_docs_name_every_cluster_file():
    doc = (ROOT / "docs" / "cluster.md").read_text()
    for name in ("cluster/gpu.yaml", "cluster/kuberay.yaml", "cluster/configure.sh", "ray down"):
        assert name in doc
