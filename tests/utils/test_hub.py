"""ofa:<name> checkpoints: the real download code against a loopback HTTP server (no other traffic)."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from utils import hub


class Files:
    """What the loopback server serves: ``files[name] = bytes``; ``cut[name] = n`` sends the first n bytes of the
    next response (with the full Content-Length) and drops the connection; ``ranges`` logs the Range headers;
    ``whole`` answers every request with the whole file (a server without range support)."""

    def __init__(self):
        self.files, self.cut, self.ranges, self.whole = {}, {}, [], False


@pytest.fixture(scope="module")
def server():
    served = Files()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            name = self.path.rsplit("/", 1)[-1]
            if name not in served.files:
                self.send_error(404)
                return
            data, start = served.files[name], 0
            header = self.headers.get("Range")
            served.ranges.append(header)
            if header and not served.whole:
                start = int(header.removeprefix("bytes=").rstrip("-"))
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:]
            cut = served.cut.pop(name, None)
            self.wfile.write(body[:cut] if cut is not None else body)
            if cut is not None:
                self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}/checkpoints"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def hub_env(server, tmp_path, monkeypatch):
    served, url = server
    monkeypatch.setenv("OFA_HOME", str(tmp_path / "ofa_home"))
    monkeypatch.setenv("OFA_HUB_URL", url)
    served.ranges.clear()
    served.whole = False
    return served, tmp_path / "ofa_home" / "checkpoints"


def test_predict_with_a_released_name_downloads_once_and_resumes(hub_env, e2e_caption_checkpoint, shared, tmp_path,
                                                                  capsys):
    import predict

    served, cache = hub_env
    data = e2e_caption_checkpoint.read_bytes()
    served.files["caption_base_best.pt"] = data
    served.cut["caption_base_best.pt"] = len(data) // 3  # the first connection drops: resumed with a Range request
    image = tmp_path / "photo.jpg"
    image.write_bytes(_first_image(shared))
    predict.main(["--path", "ofa:caption_base_best", str(image), "--no-progress-bar"])
    assert served.ranges == [None, f"bytes={len(data) // 3}-"]
    assert (cache / "caption_base_best.pt").read_bytes() == data
    assert not list(cache.glob("*.part"))
    expected = json.loads((shared / "e2e_caption" / "expected_predict.json").read_text())[0]["caption"]
    assert json.loads(capsys.readouterr().out)["caption"] == expected

    served.ranges.clear()  # cached: no second download
    assert hub.resolve("ofa:caption_base_best") == str(cache / "caption_base_best.pt")
    assert served.ranges == []


def _first_image(shared: Path) -> bytes:
    from data.images import base64_bytes

    return base64_bytes((shared / "e2e_caption" / "test.tsv").read_text().splitlines()[0].split("\t")[4])


def test_partial_file_of_an_earlier_run_is_resumed(hub_env, e2e_caption_checkpoint):
    served, cache = hub_env
    data = e2e_caption_checkpoint.read_bytes()
    served.files["ofa_tiny.pt"] = data
    cache.mkdir(parents=True)
    (cache / "ofa_tiny.pt.part").write_bytes(data[:1000])
    served.cut["ofa_tiny.pt"] = 5000  # and this run's connection drops too, after 5000 more bytes
    path = hub.resolve("ofa:ofa_tiny.pt")
    assert Path(path).read_bytes() == data
    assert served.ranges == ["bytes=1000-", "bytes=6000-"]
    assert hub.resolve_list("a.pt:ofa:ofa_tiny:b.pt") == f"a.pt:{path}:b.pt"  # fairseq's --path a.pt:b.pt

    served.files["ofa_medium.pt"] = data
    served.whole = True  # the range is ignored: the download starts over instead of appending the whole file
    (cache / "ofa_medium.pt.part").write_bytes(data[:1000])
    assert Path(hub.resolve("ofa:ofa_medium")).read_bytes() == data


def test_corrupt_download_is_refused_and_deleted(hub_env, e2e_caption_checkpoint):
    served, cache = hub_env
    data = bytearray(e2e_caption_checkpoint.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside a tensor: the zip member's CRC catches it
    served.files["vqa_base_best.pt"] = bytes(data)
    with pytest.raises(hub.HubError, match="corrupt .*CRC mismatch.*deleted"):
        hub.resolve("ofa:vqa_base_best")
    assert not cache.joinpath("vqa_base_best.pt").exists() and not list(cache.glob("*.part"))

    served.files["snli_ve_base_best.pt"] = b"<html>not found</html>"  # e.g. a proxy's error page
    with pytest.raises(hub.HubError, match="not a torch checkpoint: it starts with"):
        hub.resolve("ofa:snli_ve_base_best")


def test_unknown_names_missing_files_and_offline_are_clear(hub_env, monkeypatch):
    served, cache = hub_env
    with pytest.raises(hub.HubError, match=r"ofa:tiny: unknown checkpoint name; did you mean ofa:ofa_tiny\? known: "):
        hub.resolve("ofa:tiny")
    with pytest.raises(hub.HubError, match="did you mean ofa:caption_large_best_clean?"):
        hub.resolve("ofa:caption_large_best")
    with pytest.raises(hub.HubError, match="HTTP 404"):
        hub.resolve("ofa:refcoco_base_best")
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("OFA_HUB_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(hub.HubError, match=r"cannot download .*refused.*Offline\? Copy the file to .*ofa_base\.pt"):
        hub.resolve("ofa:ofa_base")
    assert hub.resolve("local/file.pt") == "local/file.pt"


def test_evaluate_py_path_takes_a_released_name(hub_env, e2e_caption_checkpoint, shared, tmp_path):
    """fairseq splits --path at ':' (several checkpoints): the name is resolved before that."""
    import torch
    from test_evaluate import TASK_RUNS, _evaluate_tiny, _make_tiny_checkpoint, _tiny_task_files

    served, cache = hub_env
    data, task_cfg = _tiny_task_files(torch.load(shared / "data_parity.pt", weights_only=True), "refcoco", tmp_path)
    _make_tiny_checkpoint(e2e_caption_checkpoint, "refcoco", task_cfg, tmp_path / "refcoco.pt")
    served.files["refcoco_large_best.pt"] = (tmp_path / "refcoco.pt").read_bytes()
    flags = TASK_RUNS["refcoco"][1]
    by_name = _evaluate_tiny("ofa:refcoco_large_best", "refcoco", data, tmp_path / "by_name", flags)
    assert served.ranges == [None] and (cache / "refcoco_large_best.pt").is_file()
    assert by_name == _evaluate_tiny(tmp_path / "refcoco.pt", "refcoco", data, tmp_path / "by_file", flags)
