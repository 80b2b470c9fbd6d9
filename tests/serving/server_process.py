"""Start `python -m pipelines.serve` in a fresh process and wait until it serves."""

import os
import subprocess
import sys
import time

import grpc
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class ServerProcess:
    """A lmk-serve subprocess on loopback; `stop()` sends SIGTERM and returns its output."""

    def __init__(self, args, log_path):
        self.log_path = log_path
        self._log = open(log_path, "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.serve", *args],
            cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, env=env,
        )

    def output(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def wait_available(self, address, models, timeout=300.0):
        """Poll GetModelStatus until every model has an AVAILABLE version.

        The bound is generous (TensorFlow starting on a loaded 2-core machine);
        a passing run returns as soon as the models are up.
        """
        channel = grpc.insecure_channel(address)
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        deadline = time.monotonic() + timeout
        pending = set(models)
        while pending:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"models {sorted(pending)} not AVAILABLE:\n{self.output()}")
            for name in list(pending):
                request = get_model_status_pb2.GetModelStatusRequest()
                request.model_spec.name = name
                try:
                    response = stub.GetModelStatus(request, timeout=2)
                except grpc.RpcError:
                    continue
                if any(s.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
                       for s in response.model_version_status):
                    pending.discard(name)
            time.sleep(0.1)
        channel.close()

    def stop(self, timeout=30.0) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode, self.output()
