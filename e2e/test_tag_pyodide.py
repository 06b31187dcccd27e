"""The evaluation core's named cases, run in Pyodide inside Chromium.

A module worker imports the tag's own worker module, so Pyodide, the
precompiled standard library and the ``browser`` wheel (with its integrity
check) load exactly as they do for visitors. The cases are decoded with
Python's ``json.loads`` inside Pyodide, because JavaScript's ``JSON.parse``
would turn ``456.0`` into an integer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from e2e.conftest import TAG_TIMEOUT_MS
from e2e.conftest import LiveServer

CASES_PATH = Path(__file__).resolve().parents[1] / "tests" / "cases" / "evaluation.json"
CASES = json.loads(CASES_PATH.read_text(encoding="utf-8"))

RUN_CASES = """
import json
from browser.evaluation import evaluate_definition

outcomes = []
for case in json.loads(cases_text):
    result = evaluate_definition(case["segment"], case["audiences"])
    outcomes.append({
        "name": case["name"],
        "decision": result.decision,
        "reason": result.reason.value,
        "error": result.error,
        "outcomes": [condition.outcome for condition in result.conditions],
    })
json.dumps(outcomes)
"""

# Runs in the page: starts a module worker that imports tag-worker.mjs, waits
# for its Python, runs RUN_CASES there and returns the JSON text.
START_WORKER = """
async ([workerUrl, casesText, code]) => {
  const source = `
    import { booting } from ${JSON.stringify(workerUrl)};
    self.onmessage = async (event) => {
      try {
        const { pyodide } = await booting;
        pyodide.globals.set("cases_text", event.data.casesText);
        self.postMessage({ output: pyodide.runPython(event.data.code) });
      } catch (error) {
        self.postMessage({ error: String(error) });
      }
    };
  `;
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  const worker = new Worker(url, { type: "module" });
  const reply = await new Promise((resolve, reject) => {
    // The tag's worker also posts {type: "booted"}; wait for this reply.
    worker.onmessage = (event) => {
      if ("output" in event.data || "error" in event.data) {
        resolve(event.data);
      }
    };
    worker.onerror = (event) => reject(new Error(event.message || "worker failed"));
    worker.postMessage({ casesText, code });
  });
  worker.terminate();
  if (reply.error) {
    throw new Error(reply.error);
  }
  return reply.output;
}
"""


@pytest.fixture(scope="module")
def pyodide_outcomes(browser: Browser, live_server: LiveServer) -> dict[str, Any]:
    """Run every case in Pyodide once and return the outcomes by case name."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(TAG_TIMEOUT_MS)
        page.goto(f"{live_server.url}/demo/?mparticle=off&tag=off")
        worker_url = f"{live_server.url}/static/tag-worker.mjs"
        output = page.evaluate(
            START_WORKER,
            [worker_url, CASES_PATH.read_text(encoding="utf-8"), RUN_CASES],
        )
    finally:
        context.close()

    return {outcome["name"]: outcome for outcome in json.loads(output)}


def test_pyodide_ran_every_case(pyodide_outcomes):
    assert sorted(pyodide_outcomes) == sorted(case["name"] for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_case_in_pyodide(case, pyodide_outcomes):
    outcome = pyodide_outcomes[case["name"]]

    assert outcome["decision"] is case["expected"], case["name"]
    assert outcome["reason"] == case["expected_reason"], case["name"]
    assert outcome["error"] == case.get("expected_error"), case["name"]
    if "expected_outcomes" in case:
        assert outcome["outcomes"] == case["expected_outcomes"], case["name"]
