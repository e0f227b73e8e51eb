"""``download`` against a real HTTP server on 127.0.0.1 serving archives in the official format,
and ``load_dataset(data_dir=...)`` on what it produces."""
import functools
import hashlib
import io
import pickle
import struct
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from harness import HarnessError
from harness.data import download, load_dataset
from harness.data.datasets import split_indices

PER_BATCH = 20  # images per data_batch_i; test_batch has the same


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python-2 ``str`` (BINSTRING), as the official CIFAR pickles do."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # Python 2's numpy named its reconstructor numpy.core.multiarray
    return buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def _images(first: int, n: int) -> np.ndarray:
    """(n, 3072) channel-major rows; image k has R = k % 256, G = k // 256, B = 7."""
    k = np.arange(first, first + n)
    planes = [np.repeat(v[:, None], 1024, 1) for v in (k % 256, k // 256, np.full(n, 7))]
    return np.concatenate(planes, axis=1).astype(np.uint8)


def _labels(first: int, n: int, classes: int) -> list:
    return [(k * 7) % classes for k in range(first, first + n)]


def _cifar10_archive(path, members=None):
    """cifar-10-python.tar.gz in the official layout, pickled the Python-2 way."""
    files = {}
    for i in range(5):
        first = i * PER_BATCH
        files[f"data_batch_{i + 1}"] = {b"batch_label": b"training batch", b"data": _images(first, PER_BATCH),
                                        b"labels": _labels(first, PER_BATCH, 10),
                                        b"filenames": [b"x.png"] * PER_BATCH}
    files["test_batch"] = {b"data": _images(1000, PER_BATCH), b"labels": _labels(1000, PER_BATCH, 10)}
    files["batches.meta"] = {b"label_names": [b"airplane"] * 10}
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in (members or files).items():
            data = obj if isinstance(obj, bytes) else _py2_pickle(obj)
            info = tarfile.TarInfo(name if name.startswith(("/", "..")) else f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.md5(path.read_bytes()).hexdigest()


class _Quiet(SimpleHTTPRequestHandler):
    requests = 0

    def do_GET(self):
        type(self).requests += 1
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """(base URL, served folder): a real ThreadingHTTPServer on 127.0.0.1, port chosen by the OS."""
    served = tmp_path / "served"
    served.mkdir()
    _Quiet.requests = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_extracts_and_loads(server, tmp_path):
    base, served = server
    md5 = _cifar10_archive(served / "cifar-10-python.tar.gz")
    root = tmp_path / "data"
    folder = download("cifar10", root, url=f"{base}/cifar-10-python.tar.gz", md5=md5, progress=False)
    assert folder == root / "cifar-10-batches-py" and (folder / "test_batch").is_file()
    assert hashlib.md5((root / "cifar-10-python.tar.gz").read_bytes()).hexdigest() == md5
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    assert download("cifar10", root, url=f"{base}/cifar-10-python.tar.gz", md5=md5) == folder
    assert _Quiet.requests == 1  # already there: no second fetch

    for data_dir in (root, folder):
        d = load_dataset("cifar10", data_dir=data_dir)
        assert (len(d.train), d.valid, len(d.test)) == (5 * PER_BATCH, None, PER_BATCH)
        assert d.source == str(folder)
        k = np.arange(5 * PER_BATCH)
        assert np.array_equal(d.train.x[:, 0, 3, 4].numpy(), k % 256)  # R plane, NCHW layout
        assert np.array_equal(d.train.x[:, 1, 31, 0].numpy(), k // 256)
        assert (d.train.x[:, 2] == 7).all()
        assert d.train.y.tolist() == _labels(0, 5 * PER_BATCH, 10)
        assert d.test.x[0, 0, 0, 0] == 1000 % 256 and d.test.y.tolist() == _labels(1000, PER_BATCH, 10)


def test_data_dir_reads_the_archive_in_place_with_nb201_split(tmp_path):
    root = tmp_path / "only_archive"
    root.mkdir()
    _cifar10_archive(root / "cifar-10-python.tar.gz")
    d = load_dataset("cifar10-valid", data_dir=root)
    assert d.source == str(root / "cifar-10-python.tar.gz")
    train_pos = split_indices("cifar-split.txt", "train")
    train_pos = train_pos[train_pos < 5 * PER_BATCH]
    assert np.array_equal(d.train.x[:, 0, 0, 0].numpy(), train_pos % 256)
    assert len(d.train) + len(d.valid) == 5 * PER_BATCH


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    base, served = server
    md5 = _cifar10_archive(served / "cifar-10-python.tar.gz")
    root = tmp_path / "data"
    wrong = "0" * 32
    with pytest.raises(HarnessError) as e:
        download("cifar10", root, url=f"{base}/cifar-10-python.tar.gz", md5=wrong, progress=False)
    assert f"expected md5 {wrong}, got {md5}" in str(e.value)
    assert list(root.iterdir()) == []


def test_corrupt_archive_is_refused_and_removed(server, tmp_path):
    base, served = server
    blob = b"\x1f\x8b" + bytes(range(256)) * 40  # gzip magic, then garbage
    (served / "bad.tar.gz").write_bytes(blob)
    root = tmp_path / "data"
    with pytest.raises(HarnessError, match="not a valid .tar.gz archive"):
        download("cifar10", root, url=f"{base}/bad.tar.gz", md5=hashlib.md5(blob).hexdigest(), progress=False)
    assert list(root.iterdir()) == []


def test_archive_escaping_its_folder_is_refused(server, tmp_path):
    base, served = server
    md5 = _cifar10_archive(served / "evil.tar.gz", members={"../../escaped": b"x"})
    root = tmp_path / "deep" / "data"
    with pytest.raises(HarnessError, match="refusing member '../../escaped'"):
        download("cifar10", root, url=f"{base}/evil.tar.gz", md5=md5, progress=False)
    assert not (tmp_path / "escaped").exists() and list(root.iterdir()) == []


def test_archive_without_the_batches_is_refused(server, tmp_path):
    base, served = server
    md5 = _cifar10_archive(served / "thin.tar.gz", members={"readme.html": b"hi"})
    with pytest.raises(HarnessError, match="lacks cifar-10-batches-py/data_batch_1"):
        download("cifar10", tmp_path / "d", url=f"{base}/thin.tar.gz", md5=md5, progress=False)
    assert list((tmp_path / "d").iterdir()) == []


def test_http_404_and_refused_connection_name_the_url(server, tmp_path):
    base, _ = server
    url = f"{base}/missing.tar.gz"
    with pytest.raises(HarnessError, match=f"download of {url} failed: HTTP 404"):
        download("cifar100", tmp_path / "d", url=url, md5="0" * 32, progress=False)
    assert list((tmp_path / "d").iterdir()) == []
    with pytest.raises(HarnessError, match="download of http://127.0.0.1:9/x failed"):
        download("cifar10", tmp_path / "d", url="http://127.0.0.1:9/x", progress=False, timeout=5)


def test_download_bad_names():
    with pytest.raises(HarnessError, match="cifar10 or cifar100"):
        download("ImageNet16-120", "/nonexistent")


def test_cifar100_layout_from_data_dir(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, first, n in (("train", 0, 30), ("test", 0, 40)):
        obj = {b"data": _images(first, n), b"fine_labels": _labels(first, n, 100),
               b"coarse_labels": [0] * n}
        (folder / name).write_bytes(_py2_pickle(obj))
    d = load_dataset("cifar100", data_dir=tmp_path)
    assert (len(d.train), d.num_classes) == (30, 100)
    xvalid = split_indices("cifar100-test-split.txt", "xvalid")
    assert np.array_equal(d.valid.x[:, 0, 0, 0].numpy(), xvalid[xvalid < 40])
    assert len(d.valid) + len(d.test) == 40


def test_data_dir_with_corrupt_or_truncated_archive(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "cifar-10-python.tar.gz").write_bytes(b"garbage" * 100)
    with pytest.raises(HarnessError, match="is not a readable tar archive"):
        load_dataset("cifar10", data_dir=tmp_path / "junk")
    (tmp_path / "cut").mkdir()
    _cifar10_archive(tmp_path / "whole.tar.gz")
    blob = (tmp_path / "whole.tar.gz").read_bytes()
    (tmp_path / "cut" / "cifar-10-python.tar.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(HarnessError, match=r"cifar-10-python.tar.gz is corrupt"):
        load_dataset("cifar10", data_dir=tmp_path / "cut")
