"""Landmarks from TF Serving with nothing but the stock stubs (about 30 lines).

  python serving/client_example.py localhost:8500 isbi2015_ceph             # pixels
  python serving/client_example.py localhost:8500 isbi2015_ceph image.jpg   # a PNG/JPEG file
"""

import sys

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

address, model = sys.argv[1], sys.argv[2]
# A whole image can exceed gRPC's default 4 MB message limit.
options = [("grpc.max_send_message_length", 512 << 20)]
stub = prediction_service_pb2_grpc.PredictionServiceStub(
    grpc.insecure_channel(address, options=options)
)
request = predict_pb2.PredictRequest()
request.model_spec.name = model
if len(sys.argv) > 3:  # the file as it is, decoded by the model's graph
    request.model_spec.signature_name = "serving_encoded"
    with open(sys.argv[3], "rb") as f:
        request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(f.read()))
else:
    image = np.random.default_rng(0).random((256, 256), np.float32)  # your pixels here
    request.model_spec.signature_name = "serving_default"
    request.inputs["image"].CopyFrom(tf.make_tensor_proto(image[..., np.newaxis]))
request.inputs["spacing"].CopyFrom(tf.make_tensor_proto(np.array([0.1, 0.1], np.float32)))
response = stub.Predict(request, timeout=30.0)  # always set a deadline
index = tf.make_ndarray(response.outputs["landmarks_index"])
mm = tf.make_ndarray(response.outputs["landmarks_mm"])
present = tf.make_ndarray(response.outputs["present"])
for i, (row, col) in enumerate(index):
    print(f"landmark {i}: row {row:.1f} col {col:.1f} = {mm[i]} mm, present={present[i]}")
