"""serve.py: the page in headless Chromium, POST /predict under 50 concurrent requests, bad requests -> 4xx.

One tiny RefCOCO checkpoint and one server (uvicorn in a thread, on a free loopback port) for the module.
"""
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image

from test_predict_requests import tiny_checkpoint_with_rows

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
MAX_UPLOAD = 300_000
MAX_PIXELS = 1_000_000


@pytest.fixture(scope="module")
def refcoco(e2e_caption_checkpoint, shared, tmp_path_factory):
    """A tiny RefCOCO checkpoint, its rows' images and expressions."""
    return tiny_checkpoint_with_rows("refcoco", 4, e2e_caption_checkpoint, shared, tmp_path_factory.mktemp("refcoco"))


@pytest.fixture(scope="module")
def server(refcoco):
    """``(base URL, predictor)`` of a running server."""
    import uvicorn

    import serve
    from inference import OFAPredictor

    predictor = OFAPredictor.from_checkpoint(refcoco[0], batch_size=4, beam=2)
    app = serve.build_app(predictor, max_upload_bytes=MAX_UPLOAD, max_pixels=MAX_PIXELS)
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not uv.started:
        assert thread.is_alive() and time.time() < deadline, "the server did not start"
        time.sleep(0.05)
    port = uv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", predictor
    uv.should_exit = True
    thread.join(timeout=30)


def post(url: str, fields: dict, files: dict) -> tuple[int, dict]:
    """A multipart POST; ``(status, JSON body)``."""
    boundary = uuid.uuid4().hex
    body = BytesIO()
    for name, value in fields.items():
        body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                   f'Content-Type: application/octet-stream\r\n\r\n'.encode() + data + b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    request = urllib.request.Request(url + "/predict", data=body.getvalue(), method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_predict_answers_as_predict_py_under_50_concurrent_requests(server, refcoco):
    url, predictor = server
    _, images, texts = refcoco
    expected = [predictor.ground(image, text) for image, text in zip(images, texts)]
    jobs = [(i % 4, images[i % 4].read_bytes()) for i in range(50)]
    start = time.time()
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda job: post(url, {"text": texts[job[0]]}, {"image": ("x.png", job[1])}), jobs))
    seconds = time.time() - start
    print(f"\n50 concurrent POST /predict: {seconds:.1f} s")
    assert [status for status, _ in answers] == [200] * 50, answers
    for (index, _), (_, answer) in zip(jobs, answers):
        assert answer.keys() == {"box"} and answer["box"] == pytest.approx(expected[index], abs=0.01)
    assert seconds < 120
    with urllib.request.urlopen(url + "/info") as response:
        assert json.loads(response.read())["text"] == "Referring expression"


def _png(size) -> bytes:
    buffer = BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_bad_requests_get_4xx_with_a_message(server):
    url, _ = server
    status, answer = post(url, {"text": "the dog"}, {})
    assert status == 400 and answer["error"] == "no image: send the image file as the multipart field 'image'"
    status, answer = post(url, {"text": "the dog"}, {"image": ("notes.jpg", b"not an image at all")})
    assert status == 400 and answer["error"] == "notes.jpg: not an image (PIL cannot read it)"
    status, answer = post(url, {"text": "the dog"}, {"image": ("big.png", _png((1001, 1000)))})
    assert status == 413 and answer["error"].startswith("big.png: 1001x1000 = 1001000 pixels, over the limit of")
    status, answer = post(url, {"text": "the dog"}, {"image": ("huge.bin", os.urandom(MAX_UPLOAD + 1))})
    assert status == 413 and "upload over the limit" in answer["error"] and "--max-upload-mb" in answer["error"]
    status, answer = post(url, {}, {"image": ("dog.png", _png((64, 48)))})
    assert status == 400 and "dog.png: task refcoco needs a referring expression" in answer["error"]
    status, answer = post(url, {"text": "ok"}, {"image": ("dog.png", _png((64, 48)))})
    assert status == 200 and len(answer["box"]) == 4  # the server still answers after the bad ones


def test_serve_py_command_with_a_cached_released_name(refcoco, tmp_path):
    """The command as a user runs it: ofa:<name> already in $OFA_HOME (no download), Ctrl-C stops it."""
    import signal
    import socket

    checkpoint, images, texts = refcoco
    cache = tmp_path / "ofa_home" / "checkpoints"
    cache.mkdir(parents=True)
    os.link(checkpoint, cache / "refcoco_large_best.pt")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "OFA_HOME": str(tmp_path / "ofa_home"), "OFA_HUB_URL": "http://127.0.0.1:9/none",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "serve.py", "--path", "ofa:refcoco_large_best", "--port", str(port),
                             "--cpu", "--beam", "2"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/", timeout=5) as response:
                    assert "<title>OFA</title>" in response.read().decode()
                break
            except urllib.error.URLError:
                assert proc.poll() is None and time.time() < deadline, "serve.py did not start"
                time.sleep(0.2)
        status, answer = post(url, {"text": texts[1]}, {"image": (images[1].name, images[1].read_bytes())})
        assert status == 200 and len(answer["box"]) == 4
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert f"serving refcoco on http://127.0.0.1:{port}" in stderr


def test_serve_py_binds_loopback_by_default_and_predict_py_does_not_import_web_libraries():
    import serve

    args = serve.build_parser().parse_args(["--path", "x.pt"])
    assert (args.host, args.port) == ("127.0.0.1", 7860)
    code = "import sys, predict; predict.build_parser(); assert 'fastapi' not in sys.modules and 'uvicorn' not in " \
           "sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def _chromium_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"{path} not installed (Debian: apt-get install chromium chromium-driver; .ci/run does)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed (pip install selenium)"
    return None


@pytest.mark.skipif(_chromium_missing() is not None, reason=str(_chromium_missing()))
def test_page_in_headless_chromium(server, refcoco, tmp_path):
    """Pick an image and type the expression on the page; the box comes back and is drawn."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, predictor = server
    _, images, texts = refcoco
    photo = tmp_path / "photo.png"  # the row's image enlarged, so the screenshot shows something
    with Image.open(images[0]) as image:
        image.convert("RGB").resize((image.width * 4, image.height * 4)).save(photo)
    expected = predictor.ground(photo, texts[0])

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=900,1100"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.get(url + "/")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_element(By.ID, "text-field").is_displayed())
        assert driver.find_element(By.ID, "text-label").text == "Referring expression"
        assert "refcoco" in driver.find_element(By.ID, "task").text
        driver.find_element(By.ID, "image").send_keys(str(photo))
        driver.find_element(By.ID, "text").send_keys(texts[0])
        driver.find_element(By.ID, "submit").click()
        wait.until(lambda d: d.find_element(By.ID, "json").text or d.find_element(By.ID, "error").text)
        assert driver.find_element(By.ID, "error").text == ""
        answer = json.loads(driver.find_element(By.ID, "json").text)
        assert answer["box"] == pytest.approx(expected, abs=0.01)
        assert driver.find_element(By.ID, "result").text.startswith("box: ")
        assert not driver.find_element(By.ID, "premise-field").is_displayed()  # refcoco takes no premise
        canvas = driver.find_element(By.ID, "canvas")
        assert canvas.is_displayed() and int(canvas.get_attribute("width")) == 4 * Image.open(images[0]).width
        # a random model's box lies outside the image: the page's own drawing code shows a box inside it
        red = "draw(arguments[0]); await new Promise((done) => setTimeout(done, 500)); " \
              "const d = document.getElementById('canvas').getContext('2d').getImageData(100, 60, 1, 1).data; " \
              "return [d[0], d[1], d[2]];"
        pixel = driver.execute_script(f"return (async () => {{ {red} }})();", [100, 60, 300, 200])
        assert pixel[0] > 200 and pixel[1] < 50 and pixel[2] < 50, pixel
        shot = Path(os.environ.get("OFA_SCREENSHOT_DIR", tmp_path)) / "serve_page.png"
        driver.save_screenshot(str(shot))
        with Image.open(shot) as png:
            assert png.width > 300
    finally:
        driver.quit()
