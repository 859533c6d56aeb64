#!/usr/bin/env python3
"""Drives `coordinatord web --trust` in headless Chromium (Debian's chromium and chromium-driver,
Selenium), against a daemon and redis-server that the calling Swift test started.

It starts (and restarts) the console itself. Prints one line per check passed; exits 0 when all
passed, 1 with the failure otherwise. The Swift test (WebConsoleBrowserTests) reads both.
"""
import argparse
import os
import socket
import subprocess
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

parser = argparse.ArgumentParser()
for name in ["binary", "redis-url", "trust", "port", "alice-key", "wrong-key", "approve-id", "reject-id",
             "hostile-id", "live-request", "restart-request", "screenshot", "log", "unsigned-port", "dead-seeded"]:
    parser.add_argument("--" + name, required=True)
args = parser.parse_args()
PORT = int(args.port)
BASE = "http://127.0.0.1:%d" % PORT
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), "REDIS_URL": args.redis_url}
log = open(args.log, "ab")


def check(what):
    print("ok: " + what, flush=True)


def start_web(port=PORT, mode=None):
    process = subprocess.Popen([args.binary, "web", "--port", str(port)] + (mode or ["--trust", args.trust]),
                               env=ENV, stdout=log, stderr=log)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit("console exited with %s" % process.returncode)
            time.sleep(0.05)
    raise SystemExit("console did not start")


def stop_web(process):
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def redis(*command):
    return subprocess.run(["redis-cli", "-u", args.redis_url] + list(command), check=True, capture_output=True, text=True).stdout.strip()


def push(path):
    with open(path, "rb") as f:
        message = f.read()
    subprocess.run(["redis-cli", "-u", args.redis_url, "LPUSH", "coord:requests", message], check=True, stdout=subprocess.DEVNULL)


options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900",
             "--no-first-run", "--disable-extensions", "--disable-background-networking"]:
    options.add_argument(flag)
web = start_web()
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 20)


def text(selector):
    return driver.find_element(By.CSS_SELECTOR, selector).text


def read_text(what, selector):
    """The text of the first element matching selector, once there; read again when the live
    refresh replaced the element between finding and reading it (a stale element)."""
    found = []
    wait_for(what, lambda: found.append(text(selector)) or True)
    return found[-1]


def wait_for(what, condition, timeout=20):
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException]).until(lambda d: condition())
    except TimeoutException:
        raise SystemExit("timed out waiting for " + what + "\n--- page text:\n" + driver.find_element(By.TAG_NAME, "body").text[:3000])


def import_key(path):
    driver.get(BASE + "/key")
    driver.find_element(By.ID, "principal").send_keys("alice@example.com")
    driver.find_element(By.ID, "key-file").send_keys(path)
    driver.find_element(By.ID, "import-key").click()
    wait_for("the key to be imported", lambda: "Signing as alice@example.com" in text("#key-status"))


def open_approval(approval):
    driver.get(BASE + "/approvals/" + approval)
    wait_for("the approval page", lambda: driver.find_elements(By.ID, "approval"))


try:
    # No key yet: the buttons are disabled and say why.
    open_approval(args.approve_id)
    wait_for("the key store to be read", lambda: driver.find_element(By.ID, "decision").get_attribute("data-ready") == "1")
    assert not driver.find_element(By.ID, "approve").is_enabled(), "approve enabled without a key"
    assert "No signing key" in text("#why-disabled"), text("#why-disabled")
    check("without a key the buttons are disabled and say why")

    # A key that is not alice's: the console checks the signature against the trust file.
    import_key(args.wrong_key)
    open_approval(args.approve_id)
    wait_for("approve to be enabled", lambda: driver.find_element(By.ID, "approve").is_enabled())
    driver.find_element(By.ID, "approve").click()
    wait_for("the refusal", lambda: "Refused" in text("#result"))
    assert "does not verify" in text("#result"), text("#result")
    assert redis("LLEN", "coord:dead") == args.dead_seeded, "the wrongly signed decision reached Redis"
    check("a wrong key is refused and the page says so: " + text("#result"))

    # Alice's own key: approve, then the reply and the events, without a reload.
    import_key(args.alice_key)
    open_approval(args.approve_id)
    wait_for("approve to be enabled", lambda: driver.find_element(By.ID, "approve").is_enabled())
    assert "high" in text("#approval"), "risk not shown"
    driver.execute_script("window.__sameDocument = true;")
    driver.find_element(By.ID, "approve").click()
    wait_for("the reply", lambda: text("#result").startswith("approved "))
    assert text("#approval-status") == "approved", text("#approval-status")
    check("approved by click, signed in the browser: " + text("#result"))
    events = "#decision-events li[data-type='%s']"
    approved = read_text("approval.approved", events % "approval.approved")
    assert "verified" in approved and "principal=alice@example.com" in approved, approved
    check("the approval.approved event shows verified and the principal: " + approved)
    wait_for("plan.completed", lambda: driver.find_elements(By.CSS_SELECTOR, events % "plan.completed"))
    assert driver.find_elements(By.CSS_SELECTOR, events % "step.completed"), "no step.completed shown"
    assert driver.execute_script("return window.__sameDocument === true;"), "the page was reloaded"
    check("step and plan events appeared live, without a reload")
    driver.find_element(By.ID, "plan-link").click()
    wait_for("the plan page", lambda: driver.find_elements(By.ID, "plan-status"))
    wait_for("plan completed", lambda: "completed" in text("#plan-status"))
    check("the plan page shows the plan completed")

    # A reject without a reason is refused in the page.
    open_approval(args.reject_id)
    wait_for("reject to be enabled", lambda: driver.find_element(By.ID, "reject").is_enabled())
    # Nothing sent, shown without waiting: a decision being sent disables the buttons and says
    # "Sending…" in the click's handler itself, before its first await; and every request the
    # page starts is recorded.
    driver.execute_script("window.__posted = []; const f = window.fetch; window.fetch = (u, o) => { window.__posted.push(String(u)); return f(u, o); };")
    driver.find_element(By.ID, "reject").click()
    wait_for("the refusal", lambda: "needs a reason" in text("#result"))
    assert driver.find_element(By.ID, "reject").is_enabled(), "the buttons were disabled, as for a send"
    posted = driver.execute_script("return window.__posted;")
    assert posted == [], "the page posted %s" % posted
    open_approval(args.reject_id)
    assert "pending" in text("#approval-status"), text("#approval-status")
    check("a reject without a reason is refused in the page and nothing is sent")

    # Hostile text renders as text; no script runs.
    open_approval(args.hostile_id)
    title = text("#rec-title")
    assert "<script>window.__pwned=1</script>" in title and "\\u001b[2J" in title, title
    assert driver.execute_script("return window.__pwned === undefined;"), "the title's script ran"
    driver.get(BASE + "/approvals")
    wait_for("the list", lambda: driver.find_elements(By.CSS_SELECTOR, "#approvals tbody tr"))
    assert "<script>window.__pwned=1</script>" in text("#approvals")
    assert driver.execute_script("return window.__pwned === undefined;"), "a script ran on the list"
    check("a hostile title shows as text and no script runs: " + title)
    # The page whole (fonts included) before the screenshot.
    wait_for("the page to be rendered", lambda: driver.execute_script(
        "return document.readyState === 'complete' && document.fonts.status === 'loaded';"))
    driver.save_screenshot(args.screenshot)
    check("screenshot saved")

    # Phone width: nothing wider than the screen.
    driver.set_window_size(390, 844)
    driver.get(BASE + "/")
    wait_for("the overview", lambda: driver.find_elements(By.ID, "pending-count"))
    wide = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth;")
    assert wide <= 1, "overview is %d px wider than a phone" % wide
    driver.set_window_size(1280, 900)
    check("the overview fits a phone's width")

    # Events: the live tail shows steps as they happen, and resumes after the server restarts.
    driver.get(BASE + "/events?type=step.")
    wait_for("the tail to go live", lambda: text("#stream-status") == "live")
    push(args.live_request)
    row = "#events tbody tr[data-type='%s']"
    wait_for("live step.started", lambda: any("cust-live" in r.text for r in driver.find_elements(By.CSS_SELECTOR, row % "step.started")))
    wait_for("live step.completed", lambda: any("cust-live" in r.text for r in driver.find_elements(By.CSS_SELECTOR, row % "step.completed")))
    check("the live tail shows step.started and step.completed as they happen")
    stop_web(web)
    wait_for("the page to notice", lambda: text("#stream-status") != "live", timeout=10)
    push(args.restart_request)
    # Its steps happen while the console is down.
    wait_for("cust-restart's step.completed in the stream", lambda: any(
        "step.completed" in line and "cust-restart" in line for line in redis("XRANGE", "coord:events:stream", "-", "+").splitlines()))
    web = start_web()
    wait_for("resumed step.completed", lambda: any("cust-restart" in r.text for r in driver.find_elements(By.CSS_SELECTOR, row % "step.completed")), timeout=20)
    ids = [r.get_attribute("data-id") for r in driver.find_elements(By.CSS_SELECTOR, "#events tbody tr")]
    assert len(ids) == len(set(ids)), "an event was shown twice after the resume"
    assert all(r.get_attribute("data-type").startswith("step.") for r in driver.find_elements(By.CSS_SELECTOR, "#events tbody tr"))
    check("after a restart the tail resumed from the last id: what happened meanwhile shows once")

    # Dead letters, on a console without --trust behind a proxy that names its user.
    stop_web(web)
    UNSIGNED = "http://127.0.0.1:%s" % args.unsigned_port
    web = start_web(int(args.unsigned_port), ["--allow-unsigned"])
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"X-Forwarded-User": "ops@example.com"}})
    driver.get(UNSIGNED + "/dead")
    wait_for("the dead letters", lambda: driver.find_elements(By.CSS_SELECTOR, "#dead tbody tr"))
    letters = {}
    for n in range(int(args.dead_seeded)):
        driver.get(UNSIGNED + "/dead/%d" % n)
        letters[n] = (text("#raw-note"), text("#raw"))
    base64 = [n for n, (note, _) in letters.items() if "raw_base64" in note]
    assert base64, letters
    note, raw = letters[base64[0]]
    assert "\\xff\\xfe\\u0007bell\\u001b[31m" in raw, raw
    plain = [n for n in letters if n not in base64][0]
    assert "\\u001b[2J <b>bold</b>" in letters[plain][1], letters[plain]
    assert driver.execute_script("return document.querySelector('#raw b') === null;"), "markup in a dead letter was rendered"
    check("dead letters show escaped, base64 decoded and marked as such: " + raw)
    status = driver.execute_async_script(
        "const done = arguments[0]; fetch('/dead/purge', {method: 'POST', body: 'count=2', headers: {'Content-Type': 'application/x-www-form-urlencoded'}}).then(r => done(r.status));")
    assert status == 403, status
    assert redis("LLEN", "coord:dead") == args.dead_seeded
    check("a POST without the CSRF token is refused (403) and changes nothing")
    driver.get(UNSIGNED + "/dead/%d" % plain)
    driver.find_element(By.ID, "requeue").click()
    wait_for("the confirmation", lambda: driver.find_elements(By.ID, "confirm"))
    assert redis("LLEN", "coord:dead") == args.dead_seeded, "requeued before the confirmation"
    driver.find_element(By.ID, "confirm").click()
    wait_for("the outcome", lambda: driver.find_elements(By.ID, "outcome"))
    assert "Requeued dead letter" in text("#outcome"), text("#outcome")
    check("requeue after confirmation: " + text("#outcome"))
    # The daemon takes it again and dead-letters it again (it is still not JSON): only then is
    # the purge below the last change to the list.
    wait_for("the requeued letter to come back", lambda: redis("LLEN", "coord:dead") == args.dead_seeded)
    driver.get(UNSIGNED + "/dead/purge")
    wait_for("the confirmation", lambda: driver.find_elements(By.ID, "confirm"))
    driver.find_element(By.ID, "confirm").click()
    wait_for("the outcome", lambda: driver.find_elements(By.ID, "outcome"))
    assert "Purged" in text("#outcome"), text("#outcome")
    assert redis("LLEN", "coord:dead") == "0"
    check("purge after confirmation: " + text("#outcome"))
except Exception:
    import traceback
    traceback.print_exc()
    print("--- url: " + driver.current_url + "\n--- page text:\n" + driver.find_element(By.TAG_NAME, "body").text[:3000], flush=True)
    sys.exit(1)
finally:
    try:
        driver.quit()
    finally:
        stop_web(web)
print("all browser checks passed", flush=True)
