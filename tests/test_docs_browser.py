"""The docs page in a real browser: Debian's Chromium, headless, driven through chromedriver by Selenium.

A gateway process serves a seeded partner; the page must load with no request leaving the gateway's origin,
"Authorize" must fetch a token with the client credentials, and "Try it out" on the order history must
answer 200. `?url=` and `?configUrl=` must change nothing. Every request the page makes is read from
Chromium's performance log (the DevTools `Network.requestWillBeSent` events).
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import seed_with_cli, server_process

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the `test` extra)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ready  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT_SECONDS = 15  # for one thing to appear; the whole test takes a few seconds
HISTORY = "#operations-orders-order_history"  # Swagger UI's id: tag and operationId
PLACE = "#operations-orders-place_order"

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="no Chromium/chromedriver: `apt-get install -y chromium chromium-driver` (.ci/run does)",
)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    tmp_path = tmp_path_factory.mktemp("docs")
    db_url = f"sqlite:///{tmp_path}/gateway.db"
    partner = seed_with_cli(db_url, tmp_path)
    with server_process(db_url) as base_url:
        yield base_url, partner


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,2000", "--no-first-run", "--disable-background-networking"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver: Any) -> list[str]:
    """Every URL the page asked for since the last call (the log is drained as it is read)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def assert_own_origin(urls: list[str], base_url: str) -> None:
    origin = urlsplit(base_url)
    outside = [url for url in urls if (urlsplit(url).scheme, urlsplit(url).netloc) != (origin.scheme, origin.netloc)
               and not url.startswith("data:")]
    assert not outside, outside


def wait(driver: Any) -> Any:
    return WebDriverWait(driver, WAIT_SECONDS)


def open_docs(driver: Any, url: str) -> None:
    requested_urls(driver)  # what earlier pages asked for is theirs
    driver.get(url)
    wait(driver).until(ready.presence_of_element_located((By.CSS_SELECTOR, HISTORY)))


def authorize(driver: Any, partner: dict[str, str]) -> None:
    """Client credentials for the token, and the same API key for X-Api-Key."""
    driver.find_element(By.CSS_SELECTOR, "button.authorize").click()
    dialog = wait(driver).until(ready.visibility_of_element_located((By.CSS_SELECTOR, ".dialog-ux")))
    dialog.find_element(By.ID, "client_id_clientCredentials").send_keys(partner["apiKey"])
    dialog.find_element(By.ID, "client_secret_clientCredentials").send_keys(partner["clientSecret"])
    for container in dialog.find_elements(By.CSS_SELECTOR, ".auth-container"):
        title = container.find_element(By.TAG_NAME, "h4").text
        if title.startswith("apiKey"):
            container.find_element(By.CSS_SELECTOR, "input[type=text]").send_keys(partner["apiKey"])
        if title.startswith(("apiKey", "clientCredentials")):
            container.find_element(By.CSS_SELECTOR, "button.authorize").click()
    # Swagger UI shows "Logout" once a scheme holds its credentials, the token fetched for the OAuth2 one.
    wait(driver).until(lambda _: len(dialog.find_elements(By.XPATH, ".//button[text()='Logout']")) == 2)
    dialog.find_element(By.CSS_SELECTOR, "button.close-modal").click()


def try_history(driver: Any, customer_id: str) -> str:
    """Expands the history operation, fills in the customer, executes it; the status shown."""
    operation = driver.find_element(By.CSS_SELECTOR, HISTORY)
    operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait(driver).until(lambda _: operation.find_elements(By.CSS_SELECTOR, "button.try-out__btn"))[0].click()
    customer = operation.find_element(By.CSS_SELECTOR, "tr[data-param-name='customerId'] input")
    customer.clear()
    customer.send_keys(customer_id)
    operation.find_element(By.CSS_SELECTOR, "button.execute").click()
    status = wait(driver).until(ready.visibility_of_element_located(
        (By.CSS_SELECTOR, f"{HISTORY} .live-responses-table .response .response-col_status")))
    return str(status.text).split()[0]


def try_place(driver: Any, customer_id: str, example: str) -> str:
    """Fills in the customer and one of the body's examples on the (expanded) operation that places orders,
    executes it; the status shown."""
    operation = driver.find_element(By.CSS_SELECTOR, PLACE)
    if not operation.find_elements(By.CSS_SELECTOR, "button.execute"):
        operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
        wait(driver).until(lambda _: operation.find_elements(By.CSS_SELECTOR, "button.try-out__btn"))[0].click()
    customer = operation.find_element(By.CSS_SELECTOR, "tr[data-param-name='customerId'] input")
    customer.clear()
    customer.send_keys(customer_id)
    Select(operation.find_element(By.CSS_SELECTOR, ".opblock-section-request-body select.examples-select-element")
           ).select_by_value(example)
    operation.find_element(By.CSS_SELECTOR, "button.execute").click()
    status = wait(driver).until(lambda _: operation.find_elements(
        By.CSS_SELECTOR, ".live-responses-table .response .response-col_status"))[0]
    shown = str(status.text).split()[0]
    operation.find_element(By.CSS_SELECTOR, "button.btn-clear").click()  # the next try shows its own answer
    return shown


def test_authorize_and_try_the_history(gateway: tuple[str, dict[str, str]], browser: Any) -> None:
    base_url, partner = gateway
    open_docs(browser, f"{base_url}/api/docs")
    authorize(browser, partner)
    assert try_history(browser, "C1") == "200"
    urls = requested_urls(browser)
    assert f"{base_url}/api/docs/openapi.json" in urls and f"{base_url}/ims/token/v3" in urls
    assert any(url.startswith(f"{base_url}/v3/customers/C1/orders") for url in urls)
    assert_own_origin(urls, base_url)
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors  # a Content-Security-Policy violation would show here


def test_trying_the_examples_of_a_write_one_after_another_places_each(gateway: tuple[str, dict[str, str]],
                                                                      browser: Any) -> None:
    """Each "Execute" sends the example correlation id made new: the same key for the preview after the order
    was a 422 4123 (and the order tried again, a replay)."""
    base_url, partner = gateway
    open_docs(browser, f"{base_url}/api/docs")
    authorize(browser, partner)
    assert [try_place(browser, "C1", example) for example in ("new", "preview", "new")] == ["201", "200", "201"]


@pytest.mark.parametrize("query", ["url=https://example.invalid/x.json", "configUrl=https://example.invalid/c.json",
                                   "config=https://example.invalid/c.json"])
def test_the_page_shows_only_its_own_definition(gateway: tuple[str, dict[str, str]], browser: Any, query: str) -> None:
    base_url, _ = gateway
    open_docs(browser, f"{base_url}/api/docs?{query}")
    assert "Partner Orders Gateway" in browser.find_element(By.CSS_SELECTOR, ".info .title").text
    urls = requested_urls(browser)
    assert f"{base_url}/api/docs/openapi.json" in urls
    assert_own_origin(urls, base_url)
