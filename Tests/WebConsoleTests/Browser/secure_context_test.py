#!/usr/bin/env python3
"""Why the console serves HTTPS off loopback, checked in headless Chromium (Debian's chromium and
chromium-driver, Selenium): under a name that is not loopback (`console.test`, which Chromium is
told resolves to 127.0.0.1), a console in plain HTTP is not a secure context, so the browser has
no WebCrypto and the page says it cannot sign; the same console over HTTPS (`--tls-cert`,
`--tls-key`; Chromium trusts the test's self-signed certificate by its key's SPKI hash) is one,
and a key is imported into WebCrypto's Ed25519 there.

Both consoles are started by the calling Swift test (WebConsoleTLSTests). Prints one line per
check passed; exits 0 when all passed, 1 with the failure otherwise.
"""
import argparse
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

parser = argparse.ArgumentParser()
for name in ["http-port", "https-port", "cert", "alice-key"]:
    parser.add_argument("--" + name, required=True)
args = parser.parse_args()


def check(what):
    print("ok: " + what, flush=True)


# The SPKI hash Chromium is told to trust: sha256 of the certificate's public key (DER), base64.
public_key = subprocess.run(["openssl", "x509", "-in", args.cert, "-pubkey", "-noout"], check=True, capture_output=True).stdout
der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=public_key, check=True, capture_output=True).stdout
digest = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der, check=True, capture_output=True).stdout
spki = subprocess.run(["base64", "-w0"], input=digest, check=True, capture_output=True).stdout.decode().strip()

profile = tempfile.mkdtemp(prefix="secure-context-")
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--disable-background-networking", "--user-data-dir=" + profile,
             "--host-resolver-rules=MAP console.test 127.0.0.1", "--ignore-certificate-errors-spki-list=" + spki]:
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def text(selector):
    return driver.find_element(By.CSS_SELECTOR, selector).text


def wait_for(what, condition, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise SystemExit("timed out waiting for " + what + "\n--- page text:\n" + driver.find_element(By.TAG_NAME, "body").text[:2000])


try:
    driver.get("http://console.test:%s/key" % args.http_port)
    assert "Signing key" in driver.title, driver.title
    assert driver.execute_script("return window.isSecureContext;") is False, "http://console.test is a secure context?"
    assert driver.execute_script("return !!(window.crypto && window.crypto.subtle);") is False, "WebCrypto offered in clear"
    wait_for("the page to say it cannot sign", lambda: "not a secure context" in text("#key-status"))
    check("over http:// under a name that is not loopback: no secure context, no WebCrypto, and the page says so")

    driver.get("https://console.test:%s/key" % args.https_port)
    assert "Signing key" in driver.title, driver.title
    assert driver.execute_script("return window.isSecureContext;") is True, "https://console.test is not a secure context"
    assert driver.execute_script("return location.protocol;") == "https:"
    driver.find_element(By.ID, "principal").send_keys("alice@example.com")
    driver.find_element(By.ID, "key-file").send_keys(args.alice_key)
    driver.find_element(By.ID, "import-key").click()
    wait_for("the key to be imported", lambda: "Signing as alice@example.com" in text("#key-status"))
    check("over https:// (--tls-cert): a secure context, and the key is imported into WebCrypto: " + text("#key-status"))
    print("all secure-context checks passed", flush=True)
except (AssertionError, SystemExit) as failure:
    print("FAILED: %s" % failure, flush=True)
    sys.exit(1)
finally:
    driver.quit()
