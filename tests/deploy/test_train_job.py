"""deploy/train-job.yaml: an Indexed Job whose pods find each other under the names TF_CONFIG lists."""

import os
import re
import subprocess
import sys

import yaml

from lmk_tf.training.distribute import check_tf_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load():
    with open(os.path.join(REPO, "deploy", "train-job.yaml")) as f:
        docs = {d["kind"]: d for d in yaml.safe_load_all(f)}
    assert sorted(docs) == ["Job", "Service"]
    return docs["Job"], docs["Service"]


def test_one_worker_pod_per_index_all_running_at_once():
    job, _ = load()
    spec = job["spec"]
    workers = env(job)["WORKERS"].split(",")
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == len(workers) >= 2
    assert spec["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")
    assert spec["backoffLimit"] >= 1


def test_workers_are_named_by_the_headless_service_on_the_port_they_listen_on():
    job, service = load()
    pod = job["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert pod["spec"]["subdomain"] == service["metadata"]["name"]
    listening = {p["containerPort"] for p in container["ports"]}
    served = {p["targetPort"] for p in service["spec"]["ports"]}
    # An Indexed Job's pod i is called <job name>-<i>.
    for i, worker in enumerate(env(job)["WORKERS"].split(",")):
        host, port = worker.rsplit(":", 1)
        assert host == f"{job['metadata']['name']}-{i}.{service['metadata']['name']}"
        assert int(port) in listening and int(port) in served


def test_each_pod_builds_a_valid_tf_config_and_trains_both_stages_on_the_shared_volume():
    job, _ = load()
    container = job["spec"]["template"]["spec"]["containers"][0]
    script = container["args"][0]
    builder = re.search(r"python -c '([^']+)'", script).group(1)
    workers = env(job)["WORKERS"]
    for index in range(job["spec"]["completions"]):
        out = subprocess.run([sys.executable, "-c", builder], capture_output=True, text=True, check=True,
                             env=dict(os.environ, WORKERS=workers, JOB_COMPLETION_INDEX=str(index)))
        config = check_tf_config(out.stdout)
        assert config["task"] == {"type": "worker", "index": index}
        assert config["cluster"]["worker"] == workers.split(",")
    commands = re.findall(r"lmk-train (.*?)(?:\s*&&|$)", script.strip())
    assert [re.search(r"--stage=(\w+)", c).group(1) for c in commands] == ["global", "local"]
    mount = container["volumeMounts"][0]["mountPath"]
    for command in commands:
        assert "--strategy=multi_worker" in command
        assert re.search(rf"--data={mount}/\S+", command) and re.search(rf"--model_dir={mount}/\S+", command)
    volume = job["spec"]["template"]["spec"]["volumes"][0]
    assert volume["name"] == container["volumeMounts"][0]["name"] and "persistentVolumeClaim" in volume


def env(job):
    return {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
