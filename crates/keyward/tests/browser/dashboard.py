#!/usr/bin/env python3
"""The dashboard and the portal in a real browser: Debian's Chromium, driven through
chromium-driver by selenium, against a live `keyward serve`.

    dashboard.py KEYWARD_BINARY OUTPUT_DIR

Signs in, compares the overview's figures with what the API answers for the same data,
finds a key, rotates it (the new plaintext is shown once and works), revokes a key and
sees REVOKED at /v1/verify, opens a portal link as a user, creates a key there and finds
no other user's key anywhere; a form posted without its CSRF token and an expired portal
link are refused. A screenshot of every page goes to OUTPUT_DIR/screenshots (desktop,
1280 px wide, and phone, 390 px). Exits non-zero on the first failed check.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import Select, WebDriverWait

TOKEN = "browser-test-admin-token-0123456789abcdef"
LINK_TTL = 3  # seconds a portal link lasts in this run (so one can expire)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Keyward:
    def __init__(self, binary, workdir):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, KEYWARD_ADMIN_TOKEN=TOKEN, NO_COLOR="1")
        self.log = open(os.path.join(workdir, "keyward.log"), "w")
        self.process = subprocess.Popen(
            [binary, "--database-url", f"sqlite://{workdir}/keyward.db", "serve",
             "--listen", f"127.0.0.1:{self.port}", "--portal-link-ttl", f"{LINK_TTL}s"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1)
                return
            except OSError:
                if self.process.poll() is not None:
                    raise SystemExit("keyward exited at start; see keyward.log")
                time.sleep(0.05)
        raise SystemExit("keyward did not answer /healthz")

    def call(self, method, path, body=None, key=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {key or TOKEN}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def verify(self, key):
        return self.call("POST", "/v1/verify", {"key": key})[1]["code"]

    def authorize(self, key):
        request = urllib.request.Request(self.base + "/v1/authorize")
        request.add_header("Authorization", f"Bearer {key}")
        try:
            urllib.request.urlopen(request, timeout=10)
        except urllib.error.HTTPError:
            pass

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"  ok  {what}")


def main():
    binary, output = sys.argv[1], sys.argv[2]
    shots = os.path.join(output, "screenshots")
    shutil.rmtree(shots, ignore_errors=True)
    os.makedirs(shots)
    workdir = tempfile.mkdtemp(prefix="keyward-browser-")
    server = Keyward(binary, workdir)
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(argument)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    wait = WebDriverWait(driver, 10)
    try:
        run(server, driver, wait, shots)
    except Exception:
        driver.save_screenshot(os.path.join(shots, "failure.png"))
        with open(os.path.join(output, "failure.html"), "w") as page:
            page.write(driver.page_source)
        raise
    finally:
        driver.quit()
        server.stop()
    print(f"browser tests passed; screenshots in {shots}")


def shot(driver, shots, name):
    # The whole page, not only the window: the document's height decides.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, max(height + 120, 700))
    driver.save_screenshot(os.path.join(shots, f"{name}.png"))
    driver.set_window_size(width, 1000)


def run(server, driver, wait, shots):
    base = server.base
    # Data: two users with keys, traffic of every kind.
    _, prod = server.call("POST", "/v1/keys", {"user_id": "acme", "name": "acme-production"})
    _, staging = server.call("POST", "/v1/keys", {"user_id": "acme", "name": "acme-staging"})
    _, other = server.call("POST", "/v1/keys", {"user_id": "globex", "name": "globex-secret-key"})
    server.call("PUT", "/v1/plans/tiny", {"limits": [{"window_seconds": 60, "max": 3}], "monthly_quota": 1000})
    _, tiny = server.call("POST", "/v1/keys", {"user_id": "initech", "name": "initech-bot", "plan": "tiny"})
    for _ in range(12):
        server.authorize(prod["key"])
    for _ in range(6):
        server.authorize(tiny["key"])  # 3 admitted, 3 RATE_LIMITED
    server.authorize(other["key"])
    server.call("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/hooks", "events": ["key.revoked"]})
    time.sleep(0.6)  # usage is written every 200 ms

    print("sign in")
    driver.get(base + "/ui/")
    wait.until(seen.presence_of_element_located((By.ID, "credential")))
    check(driver.current_url.endswith("/ui/sign-in"), "a signed-out browser is sent to sign in")
    shot(driver, shots, "sign-in")
    driver.find_element(By.ID, "credential").send_keys(TOKEN)
    driver.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
    wait.until(seen.presence_of_element_located((By.ID, "total-requests")))
    cookie = driver.get_cookie("kw_session")
    check(cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict", "the session cookie is HttpOnly and SameSite=Strict")

    print("overview")
    _, summary = server.call("GET", "/v1/usage/summary?days=7")
    number = lambda id_: int(driver.find_element(By.ID, id_).text.replace(",", ""))
    check(number("total-requests") == summary["requests"], f"the overview's requests equal the API's ({summary['requests']})")
    check(number("total-rejected") == summary["rejected"], f"the overview's rejections equal the API's ({summary['rejected']})")
    for code, count in summary["by_code"].items():
        cell = driver.find_element(By.CSS_SELECTOR, f"#by-code td[data-code='{code}']")
        check(int(cell.text.replace(",", "")) == count, f"{code}: {count} as the API says")
    check(len(driver.find_elements(By.CSS_SELECTOR, "figure.chart svg rect")) > 0, "the charts are drawn")
    shot(driver, shots, "overview")
    driver.find_element(By.LINK_TEXT, "30 days").click()
    wait.until(seen.url_contains("view=30d"))
    _, month = server.call("GET", "/v1/usage/summary?days=30")
    check(number("total-requests") == month["requests"], "the 30-day view equals /v1/usage/summary?days=30")

    print("find a key and rotate it")
    driver.find_element(By.LINK_TEXT, "Keys").click()
    search = wait.until(seen.presence_of_element_located((By.NAME, "q")))
    search.send_keys("production")
    driver.find_element(By.CSS_SELECTOR, "form.filters button").click()
    wait.until(seen.url_contains("q=production"))
    rows = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#keys tbody tr"))
    check(len(rows) == 1 and "acme-production" in rows[0].text, "searching by name finds the key")
    shot(driver, shots, "keys")
    rows[0].find_element(By.TAG_NAME, "a").click()
    wait.until(seen.presence_of_element_located((By.ID, "key-fields")))
    shot(driver, shots, "key")
    driver.find_element(By.LINK_TEXT, "Rotate…").click()
    Select(wait.until(seen.presence_of_element_located((By.ID, "grace")))).select_by_value("0")
    driver.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
    field = wait.until(seen.presence_of_element_located((By.ID, "new-key")))
    new_key = field.get_attribute("value")
    driver.find_element(By.CSS_SELECTOR, "button[data-copy]").click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "button[data-copy]").text == "Copied")
    shot(driver, shots, "rotated")
    check(server.verify(new_key) == "VALID", "the rotated key's new plaintext works")
    check(server.verify(prod["key"]) == "EXPIRED", "with no grace the old key expires at once")
    driver.refresh()
    driver.get(base + "/ui/keys?q=acme")
    check(new_key not in driver.page_source, "the plaintext is not shown again")

    print("revoke a key")
    driver.get(base + f"/ui/keys/{staging['id']}")
    driver.find_element(By.LINK_TEXT, "Revoke…").click()
    wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "button.danger"))).click()
    wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, ".status.revoked")))
    check(server.verify(staging["key"]) == "REVOKED", "a key revoked in the dashboard is REVOKED at /v1/verify")

    print("a form without its CSRF token")
    driver.get(base + f"/ui/keys/{other['id']}/disable")
    driver.execute_script("document.querySelector('form.card input[name=csrf]').remove()")
    driver.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
    wait.until(seen.presence_of_element_located((By.TAG_NAME, "h1")))
    check("Form refused" in driver.find_element(By.TAG_NAME, "h1").text, "a form without its token is refused")
    check(server.verify(other["key"]) == "VALID", "and the key is unchanged")

    print("users, plans, audit, webhooks")
    for path, name, marker in [("/ui/users", "users", "users"), ("/ui/users/acme", "user", "user-fields"),
                               ("/ui/plans", "plans", "plans"), ("/ui/audit", "audit", "main"),
                               ("/ui/webhooks", "webhooks", "webhooks")]:
        driver.get(base + path)
        wait.until(seen.presence_of_element_located((By.ID, marker)))
        shot(driver, shots, name)
    driver.find_element(By.CSS_SELECTOR, "#webhooks a").click()
    wait.until(seen.presence_of_element_located((By.ID, "deliveries")))
    shot(driver, shots, "webhook")

    print("a phone")
    driver.set_window_size(390, 844)
    driver.get(base + "/ui/")
    wait.until(seen.presence_of_element_located((By.ID, "total-requests")))
    overflow = driver.execute_script("return document.documentElement.scrollWidth > window.innerWidth + 1")
    check(not overflow, "the overview fits a 390 px screen")
    driver.save_screenshot(os.path.join(shots, "overview-phone.png"))
    driver.set_window_size(1280, 1000)

    print("the portal")
    _, link = server.call("POST", "/v1/users/acme/portal-sessions")
    driver.get(link["url"])
    wait.until(seen.presence_of_element_located((By.ID, "portal-keys")))
    check(driver.current_url == base + "/portal/", "the link leads to /portal/ without its token")
    check("globex" not in driver.page_source, "another user's keys are nowhere on the portal")
    driver.find_element(By.ID, "name").send_keys("made in the portal")
    driver.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
    portal_key = wait.until(seen.presence_of_element_located((By.ID, "new-key"))).get_attribute("value")
    check(server.verify(portal_key) == "VALID", "a key created in the portal works")
    check("globex" not in driver.page_source, "still no other user's key")
    shot(driver, shots, "portal")
    _, audit = server.call("GET", "/v1/audit?action=key.create&user_id=acme")
    check(any(r["actor"] == "portal:acme" for r in audit["records"]), "audited as portal:acme")
    driver.get(base + f"/portal/keys/{other['id']}/revoke")
    check("No such key" in driver.page_source, "another user's key cannot be reached by its id")
    driver.set_window_size(390, 844)
    driver.get(base + "/portal/")
    wait.until(seen.presence_of_element_located((By.ID, "portal-keys")))
    driver.save_screenshot(os.path.join(shots, "portal-phone.png"))
    driver.set_window_size(1280, 1000)

    print("an expired portal link")
    _, late = server.call("POST", "/v1/users/acme/portal-sessions")
    time.sleep(LINK_TTL + 0.5)
    driver.delete_all_cookies()
    driver.get(late["url"])
    check("cannot be used" in driver.page_source, "an expired portal link is refused")
    driver.get(base + "/portal/")
    check("/portal/signed-out" in driver.current_url, "and opens no session")
    shot(driver, shots, "portal-link-refused")


if __name__ == "__main__":
    main()
