"""clinical_ner_crf/model_sources.py: a model flag's value is a usable local folder, a cached Hub id, or a Hub id the
Hub answers for; anything else is one line saying what, where and what to do, within the timeout.

Nothing here reaches the real Hub: the Hub is a local server (answering, refusing, or accepting and never answering),
given as ``endpoint=`` in-process or as HF_ENDPOINT to a process of its own (huggingface_hub reads it at import).
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from clinical_ner_crf.command_line import UsageError
from clinical_ner_crf.model_sources import check_model_source, check_model_sources, valid_hub_id
from conftest import REPO_ROOT

HUB_ID = "emilyalsentzer/Bio_ClinicalBERT"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
SHORT_TIMEOUT = 2.0
MARGIN = 1.5  # thread start and message on a loaded 2-core machine; the retries it replaces took 65 s


def refuse(*args, **kwargs) -> str:
    with pytest.raises(UsageError) as caught:
        check_model_source(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def fake_cache(cache: Path, repo_id: str, revision: str = "main", filename: str = "config.json") -> Path:
    """A Hub download as huggingface_hub lays it out: refs/REVISION -> commit, snapshots/COMMIT/FILE."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / filename).write_text("{}")
    return cache


@pytest.fixture
def online(monkeypatch):
    """Downloads allowed in this process (conftest makes tests offline): only local servers are asked."""
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)


class FakeHub(BaseHTTPRequestHandler):
    """HEAD /REPO/resolve/REVISION/config.json answered as the Hub answers it: by the repository's name."""
    answers = {
        "present/model": (200, {"ETag": '"abc"', "X-Repo-Commit": COMMIT, "Content-Length": "2"}),
        "missing/model": (404, {"X-Error-Code": "RepoNotFound"}),
        "gated/model": (403, {"X-Error-Code": "GatedRepo"}),
        "no_config/model": (404, {"X-Error-Code": "EntryNotFound"}),
        "broken/model": (500, {}),
        "elsewhere/model": (404, {}),  # a 404 that is not the Hub's: HF_ENDPOINT is not a Hub
    }

    def do_HEAD(self):
        repo_id, _, rest = self.path.lstrip("/").partition("/resolve/")
        status, headers = self.answers.get(repo_id, (404, {"X-Error-Code": "RepoNotFound"}))
        if rest.startswith("v9/"):
            status, headers = 404, {"X-Error-Code": "RevisionNotFound"}
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_hub():
    """A server that accepts connections and never answers: the case a socket connect timeout alone does not end."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held = []

    def accept():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for connection in held:
        connection.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_check(code: str, **env) -> subprocess.CompletedProcess:
    """``code`` in a process of its own, with huggingface_hub's environment as given (read at its import)."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE")}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r})\n{code}"],
                          capture_output=True, text=True, env=environment, timeout=120)


# Local paths -------------------------------------------------------------------------------------------------------


def test_an_existing_folder_is_returned_without_importing_huggingface_hub(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    result = run_check("from clinical_ner_crf.model_sources import check_model_source\n"
                       f"print(check_model_source({str(model)!r}), 'huggingface_hub' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(model), "False"]


def test_a_mistyped_local_path_is_no_such_folder_with_the_near_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs" / "quickstart" / "model").mkdir(parents=True)
    message = refuse("outputs/quickstart/modle")
    assert message == ("--model_name_or_path outputs/quickstart/modle: no such folder, and it is not a Hub model id "
                       "either (a Hub id is 'name' or 'namespace/name'); did you mean outputs/quickstart/model?")
    assert "Repo id must be" not in message
    assert "did you mean outputs/quickstart/model?" in refuse("outputs/quickstrat/modle")
    # Nothing close: no guess, and every path form is a path, not a Hub id.
    for value in ("outputs/quickstart/zzz", "./model", "/no/such/model", "~/no_such_model_here/", "my model"):
        message = refuse(value, "--relation_model_name_or_path")
        assert message.startswith(f"--relation_model_name_or_path {value}: no such folder")
        assert "did you mean" not in message
    # namespace/name whose namespace is a local folder: read as a path, and the message says why.
    assert refuse("outputs/modle") == ("--model_name_or_path outputs/modle: no such folder (its parent outputs is a "
                                       "local folder, so it is read as a path, not a Hub id)")


def test_a_file_is_not_a_model_folder_but_is_a_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    assert refuse("model/config.json") == ("--model_name_or_path model/config.json: is a file, not a folder; give the "
                                           "model's folder (model), the one holding config.json, or a Hub model id")
    assert refuse("model/config.json", "--tokenizer_name").startswith("--tokenizer_name model/config.json: is a file")
    assert check_model_source("model/config.json", "--config_name") == "model/config.json"
    assert refuse("configs/missing.json", "--config_name").startswith(
        "--config_name configs/missing.json: no such file or folder, and it is not a Hub model id")


def test_a_tilde_no_shell_expanded_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "models" / "ner").mkdir(parents=True)
    assert check_model_source("~/models/ner") == str(tmp_path / "models" / "ner")


def test_hub_ids_are_told_from_paths():
    assert valid_hub_id(HUB_ID) and valid_hub_id("bert-base-cased") and valid_hub_id("dmis-lab/biobert-base-cased-v1.2")
    for value in ("outputs/quickstart/modle", "a//b", "a--b", "a..b", "name.git", "-name", "my model", "", "x" * 97):
        assert not valid_hub_id(value), value


# The local cache and offline mode ------------------------------------------------------------------------------------


def test_a_hub_id_offline_and_not_cached_is_one_line_saying_how_to_get_it(tmp_path):
    # conftest sets HF_HUB_OFFLINE=1
    message = refuse(HUB_ID, cache_dir=tmp_path)
    assert message == (f"--model_name_or_path {HUB_ID}: a Hub model that is not in the local cache ({tmp_path}) and "
                       f"HF_HUB_OFFLINE=1 forbids downloading it; download it once with network: `hf download "
                       f"{HUB_ID}` (or run once without HF_HUB_OFFLINE=1), or pass a local folder")
    assert f"`hf download {HUB_ID} --revision v2`" in refuse(HUB_ID, revision="v2", cache_dir=tmp_path)


def test_offline_with_an_empty_hf_home_in_a_process_of_its_own(tmp_path):
    """As a user meets it: HF_HOME empty, HF_HUB_OFFLINE=1, the command's one line and exit status 2."""
    result = run_check("from clinical_ner_crf.command_line import run_main\n"
                       "from clinical_ner_crf.model_sources import check_model_source\n"
                       f"run_main(lambda: check_model_source({HUB_ID!r}), 'run_ner_crf.py')",
                       HF_HOME=str(tmp_path), HF_HUB_OFFLINE="1")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"run_ner_crf.py: error: --model_name_or_path {HUB_ID}: a Hub model that is not in the local cache "
        f"({tmp_path / 'hub'}) and HF_HUB_OFFLINE=1 forbids downloading it; download it once with network: "
        f"`hf download {HUB_ID}` (or run once without HF_HUB_OFFLINE=1), or pass a local folder"]


def test_a_cached_hub_id_works_offline(tmp_path):
    cache = fake_cache(tmp_path / "hub", HUB_ID)
    assert check_model_source(HUB_ID, cache_dir=cache) == HUB_ID
    assert check_model_source(HUB_ID, revision="main", cache_dir=cache) == HUB_ID
    assert check_model_source(HUB_ID, revision=COMMIT, cache_dir=cache) == HUB_ID
    assert "at revision v2" in refuse(HUB_ID, revision="v2", cache_dir=cache)  # not that revision
    # A tokenizer-only download counts too.
    fake_cache(cache, "someone/tokenizer", filename="tokenizer_config.json")
    assert check_model_source("someone/tokenizer", "--tokenizer_name", cache_dir=cache) == "someone/tokenizer"


def test_a_cached_hub_id_through_hf_home_in_a_process_of_its_own(tmp_path):
    fake_cache(tmp_path / "hub", HUB_ID)
    result = run_check("from clinical_ner_crf.model_sources import check_model_source\n"
                       f"print(check_model_source({HUB_ID!r}))", HF_HOME=str(tmp_path), HF_HUB_OFFLINE="1")
    assert result.returncode == 0 and result.stdout.strip() == HUB_ID, result.stderr


# Online: what the Hub answers, and when it does not -------------------------------------------------------------------


def test_the_hubs_answers_are_named(tmp_path, online, fake_hub):
    def check(name, **kwargs):
        return check_model_source(name, cache_dir=tmp_path, endpoint=fake_hub, timeout=SHORT_TIMEOUT, **kwargs)

    assert check("present/model") == "present/model"
    assert check("no_config/model", flag="--tokenizer_name") == "no_config/model"  # the repository is there
    messages = {}
    for name in ("missing/model", "gated/model", "broken/model", "elsewhere/model"):
        with pytest.raises(UsageError) as caught:
            check(name)
        messages[name] = str(caught.value)
    assert messages["missing/model"] == (f"--model_name_or_path missing/model: no such local folder, and no such model "
                                         f"on the Hub ({fake_hub}), or it is private; check the name, or pass --token "
                                         "(or log in once with `hf auth login`)")
    assert messages["gated/model"].startswith(f"--model_name_or_path gated/model: a gated model on the Hub; accept its "
                                              f"conditions at {fake_hub}/gated/model and pass --token")
    assert messages["broken/model"].startswith(f"--model_name_or_path broken/model: the Hub ({fake_hub}) answered "
                                               "HTTP 500")
    assert messages["elsewhere/model"] == (f"--model_name_or_path elsewhere/model: the Hub ({fake_hub}) answered HTTP "
                                           "404; check the name, and that HF_ENDPOINT is a Hugging Face Hub")
    with pytest.raises(UsageError, match="has no revision 'v9'"):
        check("present/model", revision="v9")
    assert all("\n" not in message for message in messages.values())


def test_a_refused_connection_fails_at_once(tmp_path, online):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    start = time.monotonic()
    message = refuse(HUB_ID, cache_dir=tmp_path, endpoint=endpoint, timeout=SHORT_TIMEOUT)
    elapsed = time.monotonic() - start
    assert elapsed < SHORT_TIMEOUT + MARGIN, elapsed
    assert message.startswith(f"--model_name_or_path {HUB_ID}: the Hugging Face Hub at {endpoint} could not be "
                              "reached (")
    assert message.endswith(f"and the model is not in the local cache ({tmp_path}); check the network or HF_ENDPOINT, "
                            f"or download it once where there is network (`hf download {HUB_ID}`) and run with "
                            "HF_HUB_OFFLINE=1")


def test_a_hub_that_never_answers_fails_within_the_timeout(tmp_path, online, silent_hub):
    start = time.monotonic()
    message = refuse(HUB_ID, cache_dir=tmp_path, endpoint=silent_hub, timeout=SHORT_TIMEOUT)
    elapsed = time.monotonic() - start
    assert SHORT_TIMEOUT - 0.5 < elapsed < SHORT_TIMEOUT + MARGIN, elapsed
    assert f"the Hugging Face Hub at {silent_hub} did not answer within 2 s" in message


def test_a_cached_hub_id_online(tmp_path, online, fake_hub, silent_hub):
    """Cached and online: used when the Hub answers or refuses at once (from_pretrained then falls back to the cache);
    a Hub that never answers is one line saying to go offline (from_pretrained would wait on it for ever)."""
    cache = fake_cache(tmp_path / "hub", "missing/model")  # cached, though the Hub no longer has it
    for endpoint in (fake_hub, f"http://127.0.0.1:{closed_port()}"):
        assert check_model_source("missing/model", cache_dir=cache, endpoint=endpoint, timeout=SHORT_TIMEOUT) == \
            "missing/model"
    start = time.monotonic()
    message = refuse("missing/model", cache_dir=cache, endpoint=silent_hub, timeout=SHORT_TIMEOUT)
    assert time.monotonic() - start < SHORT_TIMEOUT + MARGIN
    assert message == (f"--model_name_or_path missing/model: the Hugging Face Hub at {silent_hub} did not answer "
                       f"within 2 s; the model is in the local cache ({cache}), so run with HF_HUB_OFFLINE=1 to use it "
                       "without the Hub")


def test_several_flags_share_one_deadline(tmp_path, online, silent_hub, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    (tmp_path / "architecture.json").write_text("{}")
    sources = {"--model_name_or_path": "model", "--config_name": "architecture.json", "--tokenizer_name": None}
    assert check_model_sources(sources) == sources
    with pytest.raises(UsageError, match=r"^--tokenizer_name \./modle: no such folder.*; did you mean model\?$"):
        check_model_sources({"--model_name_or_path": "model", "--tokenizer_name": "./modle"})
    # Two Hub ids, neither answered: both together within one timeout.
    start = time.monotonic()
    with pytest.raises(UsageError, match="^--model_name_or_path a/first: .* did not answer"):
        check_model_sources({"--model_name_or_path": "a/first", "--tokenizer_name": "a/first"},
                            cache_dir=tmp_path, endpoint=silent_hub, timeout=SHORT_TIMEOUT)
    assert time.monotonic() - start < SHORT_TIMEOUT + MARGIN


def test_hf_endpoint_unreachable_in_a_process_of_its_own(tmp_path):
    """HF_ENDPOINT as a user sets it (read by huggingface_hub at import), connection refused: one line, at once."""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    result = run_check("import time\n"
                       "from clinical_ner_crf.command_line import run_main\n"
                       "from clinical_ner_crf.model_sources import check_model_source\n"
                       "start = time.monotonic()\n"
                       "try:\n"
                       f"    run_main(lambda: check_model_source({HUB_ID!r}, timeout={SHORT_TIMEOUT}),\n"
                       "             'run_ner_crf.py')\n"
                       "finally:\n"
                       "    print(time.monotonic() - start)",
                       HF_HOME=str(tmp_path), HF_ENDPOINT=endpoint)
    assert result.returncode == 2
    assert float(result.stdout) < SHORT_TIMEOUT + MARGIN
    [line] = result.stderr.splitlines()
    assert line.startswith(f"run_ner_crf.py: error: --model_name_or_path {HUB_ID}: the Hugging Face Hub at {endpoint} "
                           "could not be reached (")


@pytest.mark.slow
def test_the_default_timeout_bounds_a_silent_hf_endpoint(tmp_path, silent_hub):
    """The default 10 s, end to end in a process of its own with HF_ENDPOINT at a server that never answers."""
    result = run_check("import json, time\n"
                       "from clinical_ner_crf.command_line import UsageError\n"
                       "from clinical_ner_crf.model_sources import check_model_source\n"
                       "start = time.monotonic()\n"
                       "try:\n"
                       f"    check_model_source({HUB_ID!r})\n"
                       "except UsageError as error:\n"
                       "    print(json.dumps([time.monotonic() - start, str(error)]))",
                       HF_HOME=str(tmp_path), HF_ENDPOINT=silent_hub)
    elapsed, message = json.loads(result.stdout)
    assert 9.5 < elapsed < 10 + MARGIN, elapsed
    assert f"the Hugging Face Hub at {silent_hub} did not answer within 10 s" in message


def test_check_model_arguments_checks_a_training_commands_model_flags(tmp_path):
    """The three model flags of run_ner_crf.py, run_re.py and pretrain_mlm.py, checked and written back: locally
    only (before the heavy imports), or with the cache and the Hub (offline here: a missing Hub id is refused)."""
    from types import SimpleNamespace

    from clinical_ner_crf.model_sources import check_model_arguments

    (tmp_path / "model").mkdir()
    arguments = SimpleNamespace(model_name_or_path=str(tmp_path / "model"), config_name=None,
                                tokenizer_name=str(tmp_path / "tokenizr"))
    with pytest.raises(UsageError, match=r"^--tokenizer_name .*tokenizr: no such folder"):
        check_model_arguments(arguments, local_only=True)
    arguments.tokenizer_name = "someone/not-cached-here"
    check_model_arguments(arguments, local_only=True)  # a Hub id: left for the full check
    arguments.tokenizer_name = None
    check_model_arguments(arguments, cache_dir=str(tmp_path / "empty-cache"))
    assert arguments.model_name_or_path == str(tmp_path / "model")
