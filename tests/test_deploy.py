"""The cluster example in deploy/cluster holds together: what the README's "Scaling out"
says must be shared is shared, and the config it mounts is valid for a Dask executor."""

from pathlib import Path

import yaml

from perfwatch.config import load_settings

CLUSTER = Path(__file__).parents[1] / "deploy" / "cluster"


def test_the_cluster_example_shares_the_data_dir_and_points_at_its_scheduler() -> None:
    compose = yaml.safe_load((CLUSTER / "compose.yaml").read_text())
    services = compose["services"]
    workers = [s for name, s in services.items() if name.startswith("worker")]
    daemons = [s for name, s in services.items() if name.startswith("perfwatch")]
    assert len(workers) == 2 and len(daemons) == 2 and "postgres" in services
    environment = daemons[0]["environment"]
    address = environment["PERFWATCH_DASK_ADDRESS"]
    assert all(w["command"][:3] == ["dask", "worker", address] for w in workers)
    assert all("--standby" in d["command"] and "run" in d["command"] for d in daemons)
    store = environment["PERFWATCH_STORE"].replace("${POSTGRES_PASSWORD:-perfwatch}", "pw")
    settings = load_settings(
        CLUSTER / "perfwatch.toml",
        environ={"PERFWATCH_STORE": store, "PERFWATCH_DASK_ADDRESS": address},
    )
    assert settings.executor.kind == "dask" and settings.executor.address == address
    shared = "shared:/srv/perfwatch"
    assert all(shared in s["volumes"] for s in [*workers, *daemons])
    paths = [settings.data_dir, *(m.inbox for m in settings.models)]
    assert all(p.is_relative_to("/srv/perfwatch") for p in paths), "on the shared volume"
