import gzip
import hashlib
import socket
import time

import pytest

from genmodels.data.download import DownloadError, download_all, fetch
from genmodels.data.sources import RemoteFile, registry

CONTENT = b"the quick brown fox\n"
SHA = hashlib.sha256(CONTENT).hexdigest()
REFUSED = "http://127.0.0.1:9/toy/a.txt"  # the discard port: nothing listens, refused at once


def toy(name="a.txt", sha=SHA, urls=(REFUSED,), local_dirs=()):
    return RemoteFile("toy", name, sha, urls, local_dirs)


def make_mirror(root, name="a.txt", data=CONTENT):
    (root / "toy").mkdir(parents=True, exist_ok=True)
    (root / "toy" / name).write_bytes(data)
    return root


def test_mirror_hit_writes_the_verified_file(tmp_path):
    mirror = make_mirror(tmp_path / "mirror")
    served = download_all({"toy": [toy()]}, tmp_path / "out", str(mirror), timeout=2)
    assert (tmp_path / "out" / "toy" / "a.txt").read_bytes() == CONTENT
    assert served == {"mirror": 1, "canonical": 0, "local": 0}


def test_gzip_files_are_verified_and_stored_decompressed(tmp_path):
    mirror = make_mirror(tmp_path / "mirror", "a.bin.gz", gzip.compress(CONTENT))
    download_all({"toy": [toy("a.bin.gz")]}, tmp_path / "out", str(mirror), timeout=2)
    assert (tmp_path / "out" / "toy" / "a.bin").read_bytes() == CONTENT


def test_url_prefix_mirror(tmp_path):
    mirror = make_mirror(tmp_path / "mirror")
    download_all({"toy": [toy()]}, tmp_path / "out", mirror.as_uri(), timeout=2)
    assert (tmp_path / "out" / "toy" / "a.txt").read_bytes() == CONTENT


def test_checksum_mismatch_is_an_error_and_leaves_no_file(tmp_path):
    mirror = make_mirror(tmp_path / "mirror", data=b"tampered\n")
    good = toy("b.txt")
    make_mirror(mirror, "b.txt")
    out = tmp_path / "out"
    with pytest.raises(DownloadError) as err:
        # b.txt is fine and comes first: it must not survive a.txt's failure.
        download_all({"toy": [good, toy()]}, out, str(mirror), timeout=2)
    assert "toy/a.txt" in str(err.value)
    assert f"expected sha256 {SHA}" in str(err.value)
    assert "checksum mismatch" in str(err.value)
    assert list(out.iterdir()) == []  # no dataset folder, no staging leftovers


def test_every_source_failing_lists_each_with_its_reason(tmp_path):
    file = toy(local_dirs=(str(tmp_path / "debian"),))
    with pytest.raises(DownloadError) as err:
        fetch(file, tmp_path / "out" / "a.txt", str(tmp_path / "mirror"), timeout=2)
    message = str(err.value)
    assert str(tmp_path / "mirror" / "toy" / "a.txt") in message
    assert REFUSED in message and "refused" in message.lower()
    assert str(tmp_path / "debian" / "a.txt") in message
    assert "No such file" in message
    assert not (tmp_path / "out" / "a.txt").exists()


def test_later_source_used_when_the_mirror_is_corrupt(tmp_path):
    mirror = make_mirror(tmp_path / "mirror", data=b"tampered\n")
    local = tmp_path / "debian"
    local.mkdir()
    (local / "a.txt").write_bytes(CONTENT)
    served = download_all(
        {"toy": [toy(local_dirs=(str(local),))]}, tmp_path / "out", str(mirror), timeout=2
    )
    assert served["local"] == 1
    assert (tmp_path / "out" / "toy" / "a.txt").read_bytes() == CONTENT


def test_a_silent_server_times_out(tmp_path):
    # A socket that accepts connections (backlog) but never answers.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/a.txt"
        start = time.monotonic()
        with pytest.raises(DownloadError, match="timed out"):
            fetch(toy(urls=(url,)), tmp_path / "a.txt", None, timeout=0.5)
        assert time.monotonic() - start < 5


def test_registry_pins_every_file_once():
    files = [f for group in registry().values() for f in group]
    assert len(files) == 4 + 1 + 54
    assert len({(f.dataset, f.target) for f in files}) == len(files)
    assert all(len(f.sha256) == 64 and f.urls for f in files)


def test_stage_rejects_a_missing_mirror_folder(tmp_path, monkeypatch, capsys):
    from conftest import ROOT

    monkeypatch.setenv("GENMODELS_MIRROR", str(tmp_path / "nowhere"))
    import runpy

    with pytest.raises(SystemExit) as exit_:
        monkeypatch.setattr("sys.argv", ["download", "--out", str(tmp_path / "out"),
                                         "--params", str(ROOT / "params.yaml")])
        runpy.run_path(str(ROOT / "stages" / "download.py"), run_name="__main__")
    assert exit_.value.code == 1
    assert "mirror folder does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
