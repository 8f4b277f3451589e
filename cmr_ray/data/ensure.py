"""The clip store a config names, built when it is missing: `ensure_store(cfg)`.

    from cmr_ray.data.ensure import ensure_store
    store = ensure_store(cfg)   # data.store; generated + prepared when data.source is synthetic

A synthetic source generates the cohort beside the store (`cohort_dir`: STORE-cohort) and
prepares it; a DICOM source (`data.dicom_dir` + `data.reports`) is prepared; an existing
store must be the one the config describes (`check_store_matches`: frame size, and for a
cohort the sweep generated, the same size, seed, protocol and generator version), else
`StoreMismatch` (a `ConfigError`) says which keys differ.  Used by `cmr-ray sweep` and
`cmr-ray train` alike.
"""
from __future__ import annotations

import os
from pathlib import Path

from cmr_ray.config import Config, ConfigError


def say(line: str) -> None:
    print(line, flush=True)


class StoreMismatch(ConfigError):
    pass


def cohort_dir(store: str) -> Path:
    """Where the sweep writes the synthetic cohort it generates for a missing `store`."""
    from cmr_ray.data import storefs

    _, root = storefs.open_store(store)
    local = store if "://" not in store else os.path.join("cmr_store", Path(root).name)
    return Path(f"{local.rstrip('/')}-cohort").resolve()


def check_store_matches(cfg: Config, info: dict, cohort: dict | None = None) -> None:
    """An existing store must be the one the config describes: same frame size, and when the
    sweep generated its synthetic cohort (`cohort`: that cohort.json), the same cohort (a
    store built for another cohort size would otherwise be reused silently).  A store
    prepared by hand (`cmr-ray prepare`) is taken as it is."""
    data, store = cfg.data, cfg.data.store
    size = info.get("image_size")
    if size is not None and int(size) != data.image_size:
        raise StoreMismatch(f"data.store {store}: holds {size} px clips but data.image_size is "
                            f"{data.image_size}; point data.store elsewhere or delete it")
    if data.source != "synthetic" or not cohort:
        return
    from cmr_ray.synth.cohort import FORMAT_VERSION

    want = {"studies": data.synth_studies, "seed": data.synth_seed, "protocol": data.synth_protocol,
            "format_version": FORMAT_VERSION}  # a cohort of an older generator is another cohort
    bad = [k for k in want if cohort.get(k) != want[k]]
    if bad:
        raise StoreMismatch(f"data.store {store}: its synthetic cohort ({cohort_dir(store)}) has "
                            f"{', '.join(f'{k} {cohort.get(k)}' for k in bad)}, but the config asks for "
                            f"{', '.join(f'{k} {want[k]}' for k in bad)} (data.synth_*); point data.store "
                            "elsewhere or delete both")


def beside_store(cfg: dict, suffix: str) -> Path:
    """A folder beside the config's data store, `<store>-<suffix>` (local; for a store on an
    object store, under cmr_store/): where the sweep keeps what it builds for that store (the
    transfer and external stand-ins)."""
    store = str(cfg.data.store).rstrip("/")
    local = store if "://" not in store else os.path.join("cmr_store", store.rsplit("/", 1)[-1])
    return Path(f"{local}-{suffix}").resolve()


def store_cohort(store: str) -> dict | None:
    """The cohort.json of the synthetic cohort the sweep generated for `store`, if any."""
    from cmr_ray.synth.cohort import read_marker

    path = cohort_dir(store) / "cohort.json"
    return read_marker(path) if path.exists() else None


def existing_store_info(store: str) -> dict | None:
    """The store's store.json, or None when there is no store there yet."""
    from cmr_ray.data.reader import StoreError, store_info

    try:
        return store_info(store)
    except StoreError:
        return None


def check_existing_store(cfg: Config) -> bool:
    """Whether the config's store exists; `StoreMismatch` when it is not the store the config describes."""
    store = cfg.data.store
    info = existing_store_info(store)
    if info is not None:
        check_store_matches(cfg, info, store_cohort(store))
    return info is not None


def ensure_store(cfg: Config, address: str | None = None, echo=say) -> str:
    """The store directory, built first when missing (synthetic cohort or DICOM source)."""
    data = cfg.data
    store = data.store
    if check_existing_store(cfg):
        return store
    from cmr_ray.data.prepare import prepare

    if data.source == "synthetic":
        from cmr_ray.synth import generate_cohort

        cohort, have = cohort_dir(store), store_cohort(store)
        if have is not None:  # generated before (the store was not finished): the same cohort?
            check_store_matches(cfg, {}, have)
        else:
            echo(f"store {store} is missing: generating the synthetic cohort "
                 f"({data.synth_studies} studies, protocol {data.synth_protocol}, seed {data.synth_seed}) into {cohort}")
            generate_cohort(str(cohort), data.synth_studies, data.synth_seed, protocol=data.synth_protocol)
        echo(f"preparing the clip store {store} from {cohort}")
        prepare(str(cohort / "dicom"), str(cohort / "reports.csv"), store,
                labels=str(cohort / "labels.csv"), cfg=cfg, address=address)
    elif data.dicom_dir and data.reports:
        echo(f"store {store} is missing: preparing it from {data.dicom_dir}")
        prepare(data.dicom_dir, data.reports, store, labels=data.labels, cfg=cfg, address=address)
    else:
        raise FileNotFoundError(f"data.store {store}: no store.json there, and data.dicom_dir/data.reports are not set to build it")
    return store
