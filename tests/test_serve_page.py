"""The page in a real browser (headless Chromium): draw a digit, see the class and the bars, switch, clear;
pick a CNV network and upload a photo."""

from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest
from conftest import IN_CI

for module in ("starlette", "uvicorn", "selenium", "PIL"):
    pytest.importorskip(module) if not IN_CI else __import__(module)

import uvicorn  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

import bnn  # noqa: E402
from bnn.serve import create_app  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    if IN_CI:
        raise RuntimeError("CI needs chromium and chromedriver (.ci/run installs Debian's)")
    pytest.skip("no chromium/chromedriver here (apt-get install chromium chromium-driver)", allow_module_level=True)


@pytest.fixture(scope="module")
def server(original_dir):
    classifiers = {n: bnn.Classifier(n, original_dir / n) for n in ("lfcW1A1", "lfcW1A2")}
    classifiers["cnvW1A1"] = bnn.Classifier("cnvW1A1", "cifar10", "reference")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(classifiers), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    yield driver
    driver.quit()


def _draw(browser, points):
    pad = browser.find_element(By.ID, "pad")
    chain = ActionChains(browser).move_to_element_with_offset(pad, *points[0]).click_and_hold()
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        chain = chain.move_by_offset(x1 - x0, y1 - y0)
    chain.release().perform()


def test_draw_a_one_then_switch_and_clear(server, browser):
    browser.get(server)
    WebDriverWait(browser, 20).until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "yes")
    # A vertical stroke down the middle (offsets from the canvas centre): a "1".
    _draw(browser, [(0, -90), (0, -30), (0, 30), (0, 90)])
    answer = browser.find_element(By.ID, "answer")
    WebDriverWait(browser, 20).until(lambda b: answer.text != "")
    assert answer.text == "1"
    bars = browser.find_element(By.ID, "bars").find_elements(By.CLASS_NAME, "bar")
    assert len(bars) == 10 and "top" in bars[1].get_attribute("class")
    assert browser.find_element(By.ID, "info").text.startswith("lfcW1A1: class 1")
    Select(browser.find_element(By.ID, "model")).select_by_value("lfcW1A2")
    WebDriverWait(browser, 20).until(lambda b: b.find_element(By.ID, "info").text.startswith("lfcW1A2"))
    assert browser.find_element(By.ID, "error").text == ""
    browser.find_element(By.ID, "clear").click()
    assert answer.text == "" and browser.find_element(By.ID, "bars").find_elements(By.CLASS_NAME, "bar") == []


def test_pick_a_cnv_network_and_upload_a_photo(server, browser):
    from conftest import PICTURES, need

    browser.get(server)
    WebDriverWait(browser, 20).until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "yes")
    Select(browser.find_element(By.ID, "model")).select_by_value("cnvW1A1")
    assert browser.find_element(By.ID, "title").text == "Classify a photo"
    assert "32x32 thumbnail" in browser.find_element(By.ID, "hint").text
    browser.find_element(By.ID, "photo").send_keys(str(need(PICTURES / "deer.jpg")))
    answer = browser.find_element(By.ID, "answer")
    WebDriverWait(browser, 30).until(lambda b: answer.text != "")
    assert answer.text == "Deer"
    assert browser.find_element(By.ID, "info").text.startswith("cnvW1A1: class 4")
    assert len(browser.find_element(By.ID, "bars").find_elements(By.CLASS_NAME, "bar")) == 10
    assert browser.find_element(By.ID, "preview").is_displayed()
