"""TF Serving config protos that tensorflow-serving-api does not ship, built for tests.

The pip package has model_server_config_pb2 but not BatchingParameters
(tensorflow_serving/servables/tensorflow/session_bundle_config.proto) nor
MonitoringConfig (tensorflow_serving/config/monitoring_config.proto). These
descriptors copy those .proto files' field names, numbers and types, so the
text-format parser accepts and rejects exactly what tensorflow_model_server's does
for the fields they define.
"""

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    wrappers_pb2,  # noqa: F401 - registers wrappers.proto in the pool
)

F = descriptor_pb2.FieldDescriptorProto


def _build():
    pool = descriptor_pool.Default()
    try:
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    except KeyError:
        proto = descriptor_pb2.FileDescriptorProto(
            name="lmk_tests/tfs_serving_configs.proto",
            package="tensorflow.serving",
            syntax="proto3",
            dependency=["google/protobuf/wrappers.proto"],
        )
        batching = proto.message_type.add(name="BatchingParameters")
        for name, number, wrapper in [
            ("max_batch_size", 1, "Int64Value"),
            ("batch_timeout_micros", 2, "Int64Value"),
            ("max_enqueued_batches", 3, "Int64Value"),
            ("num_batch_threads", 4, "Int64Value"),
            ("thread_pool_name", 5, "StringValue"),
        ]:
            batching.field.add(name=name, number=number, type=F.TYPE_MESSAGE,
                               label=F.LABEL_OPTIONAL, type_name=f".google.protobuf.{wrapper}")
        batching.field.add(name="allowed_batch_sizes", number=6, type=F.TYPE_INT64,
                           label=F.LABEL_REPEATED)
        batching.field.add(name="pad_variable_length_inputs", number=7, type=F.TYPE_BOOL,
                           label=F.LABEL_OPTIONAL)
        prometheus = proto.message_type.add(name="PrometheusConfig")
        prometheus.field.add(name="enable", number=1, type=F.TYPE_BOOL, label=F.LABEL_OPTIONAL)
        prometheus.field.add(name="path", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
        monitoring = proto.message_type.add(name="MonitoringConfig")
        monitoring.field.add(name="prometheus_config", number=1, type=F.TYPE_MESSAGE,
                             label=F.LABEL_OPTIONAL,
                             type_name=".tensorflow.serving.PrometheusConfig")
        pool.Add(proto)
    get = message_factory.GetMessageClass
    return (get(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")),
            get(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig")))


BatchingParameters, MonitoringConfig = _build()
