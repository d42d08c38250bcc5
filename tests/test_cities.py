"""The PyData-cities stage: a mixture on the sphere, proposals that are real places."""

import numpy as np
import pytest

from genmodels.cities import (
    EARTH_RADIUS_KM,
    CitiesConfig,
    propose,
    read_events,
    to_latlon,
    to_unit,
    world_cities,
)
from genmodels.config import ParamsError, from_dict

from conftest import ROOT


@pytest.fixture(scope="module")
def events():
    return read_events(ROOT / "data" / "pydata_events.csv")


@pytest.fixture(scope="module")
def result(events):
    cfg = CitiesConfig(n_samples=500)
    return propose(events, world_cities(cfg.min_population), cfg)


def test_unit_vectors_round_trip():
    lat, lon = np.array([51.5, -31.4, 0.0]), np.array([-0.13, -64.2, 179.0])
    xyz = to_unit(lat, lon)
    assert np.allclose(np.linalg.norm(xyz, axis=1), 1)
    back_lat, back_lon = to_latlon(xyz * 3.0)  # any length projects back onto the sphere
    assert np.allclose(back_lat, lat) and np.allclose(back_lon, lon)


def test_events_file_names_its_source_and_has_coordinates(events):
    header = (ROOT / "data" / "pydata_events.csv").read_text().splitlines()[:3]
    assert any("Source:" in line for line in header)
    assert events.latitude.between(-90, 90).all() and events.longitude.between(-180, 180).all()
    assert len(events) >= 50


def test_mixture_beats_one_gaussian_on_held_out_editions(result):
    m = result["metrics"]
    assert m["heldout/events"] > 0 and m["train/events"] > 0
    assert m["heldout/loglik_mixture"] > m["heldout/loglik_gaussian"]


def test_proposals_are_real_new_cities(result, events):
    cities = world_cities()
    proposals = result["proposals"]
    assert len(proposals) == CitiesConfig().n_proposals
    assert set(proposals.geonameid) <= set(cities.geonameid)  # real GeoNames places
    assert not set(proposals.geonameid) & set(events.geonameid)  # none hosted before
    host = to_unit(events.latitude.to_numpy(), events.longitude.to_numpy())
    prop = to_unit(proposals.latitude.to_numpy(), proposals.longitude.to_numpy())
    km = np.arccos(np.clip(prop @ host.T, -1, 1)).min(axis=1) * EARTH_RADIUS_KM
    assert (km >= CitiesConfig().min_distance_km).all()
    assert proposals.samples.is_monotonic_decreasing


def test_same_seed_same_proposals(events, result):
    cfg = CitiesConfig(n_samples=500)
    again = propose(events, world_cities(cfg.min_population), cfg)
    assert again["metrics"] == result["metrics"]
    assert again["proposals"].equals(result["proposals"])


def test_bad_params_are_named(events):
    with pytest.raises(ParamsError, match="cities.components"):
        from_dict(CitiesConfig, {"components": 0}, "cities")
    with pytest.raises(ValueError, match="test_from_year"):
        propose(events, world_cities(10**6), CitiesConfig(test_from_year=2100))
