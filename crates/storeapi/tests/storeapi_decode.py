#!/usr/bin/python3
"""Independent decoder for the Strata StoreAPI cross-check test.

Builds the Thanos StoreAPI message descriptors itself from the field numbers in
spec/wire-formats.md (no generated code, no .proto files), calls the server with
gRPC generic calls and prints what it decoded as one JSON object.

Usage: storeapi_decode.py HOST:PORT
Needs Debian's python3-grpcio and python3-protobuf.
"""
import json
import sys

try:
    import grpc
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
except ImportError as e:  # pragma: no cover - reported by the Rust test
    sys.stderr.write(
        "missing Python module (%s): apt-get install -y python3-grpcio python3-protobuf\n" % e
    )
    sys.exit(3)

F = descriptor_pb2.FieldDescriptorProto
OPT, REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED
I64, U64, BOOL, STR, BYTES, MSG, ENUM = (
    F.TYPE_INT64, F.TYPE_UINT64, F.TYPE_BOOL, F.TYPE_STRING, F.TYPE_BYTES,
    F.TYPE_MESSAGE, F.TYPE_ENUM,
)


def message(fd, name, fields, enums=(), oneofs=()):
    m = fd.message_type.add(name=name)
    for ename, values in enums:
        e = m.enum_type.add(name=ename)
        for vname, num in values:
            e.value.add(name=vname, number=num)
    for o in oneofs:
        m.oneof_decl.add(name=o)
    for f in fields:
        fname, num, typ, label = f[:4]
        field = m.field.add(name=fname, number=num, type=typ, label=label)
        if len(f) > 4 and f[4]:
            field.type_name = f[4]
        if len(f) > 5:
            field.oneof_index = f[5]
    return m


def build_pool():
    fd = descriptor_pb2.FileDescriptorProto(name="crosscheck/thanos.proto", package="thanos", syntax="proto3")
    message(fd, "Label", [("name", 1, STR, OPT), ("value", 2, STR, OPT)])
    message(fd, "ZLabelSet", [("labels", 1, MSG, REP, ".thanos.Label")])
    message(fd, "Chunk", [
        ("type", 1, ENUM, OPT, ".thanos.Chunk.Encoding"),
        ("data", 2, BYTES, OPT),
        ("hash", 3, U64, OPT),
    ], enums=[("Encoding", [("XOR", 0), ("HISTOGRAM", 1), ("FLOAT_HISTOGRAM", 2)])])
    message(fd, "AggrChunk", [
        ("min_time", 1, I64, OPT), ("max_time", 2, I64, OPT),
        ("raw", 3, MSG, OPT, ".thanos.Chunk"), ("count", 4, MSG, OPT, ".thanos.Chunk"),
        ("sum", 5, MSG, OPT, ".thanos.Chunk"), ("min", 6, MSG, OPT, ".thanos.Chunk"),
        ("max", 7, MSG, OPT, ".thanos.Chunk"), ("counter", 8, MSG, OPT, ".thanos.Chunk"),
    ])
    message(fd, "Series", [
        ("labels", 1, MSG, REP, ".thanos.Label"),
        ("chunks", 2, MSG, REP, ".thanos.AggrChunk"),
    ])
    message(fd, "SeriesBatch", [("series", 1, MSG, REP, ".thanos.Series")])
    message(fd, "LabelMatcher", [
        ("type", 1, ENUM, OPT, ".thanos.LabelMatcher.Type"),
        ("name", 2, STR, OPT), ("value", 3, STR, OPT),
    ], enums=[("Type", [("EQ", 0), ("NEQ", 1), ("RE", 2), ("NRE", 3)])])
    message(fd, "SeriesRequest", [
        ("min_time", 1, I64, OPT), ("max_time", 2, I64, OPT),
        ("matchers", 3, MSG, REP, ".thanos.LabelMatcher"),
        ("max_resolution_window", 4, I64, OPT),
        ("partial_response_disabled", 6, BOOL, OPT),
        ("skip_chunks", 8, BOOL, OPT),
        ("limit", 15, I64, OPT),
        ("response_batch_size", 16, I64, OPT),
    ])
    message(fd, "SeriesResponse", [
        ("series", 1, MSG, OPT, ".thanos.Series", 0),
        ("warning", 2, STR, OPT, None, 0),
        ("batch", 4, MSG, OPT, ".thanos.SeriesBatch", 0),
    ], oneofs=["result"])
    message(fd, "LabelNamesRequest", [
        ("start", 3, I64, OPT), ("end", 4, I64, OPT),
        ("matchers", 6, MSG, REP, ".thanos.LabelMatcher"), ("limit", 8, I64, OPT),
    ])
    message(fd, "LabelNamesResponse", [("names", 1, STR, REP), ("warnings", 2, STR, REP)])
    message(fd, "LabelValuesRequest", [
        ("label", 1, STR, OPT), ("start", 4, I64, OPT), ("end", 5, I64, OPT),
        ("matchers", 7, MSG, REP, ".thanos.LabelMatcher"), ("limit", 9, I64, OPT),
    ])
    message(fd, "LabelValuesResponse", [("values", 1, STR, REP), ("warnings", 2, STR, REP)])

    info = descriptor_pb2.FileDescriptorProto(
        name="crosscheck/info.proto", package="thanos.info", syntax="proto3",
        dependency=["crosscheck/thanos.proto"])
    message(info, "InfoRequest", [])
    message(info, "TSDBInfo", [
        ("labels", 1, MSG, OPT, ".thanos.ZLabelSet"),
        ("min_time", 2, I64, OPT), ("max_time", 3, I64, OPT),
    ])
    message(info, "StoreInfo", [
        ("min_time", 1, I64, OPT), ("max_time", 2, I64, OPT),
        ("supports_sharding", 3, BOOL, OPT),
        ("supports_without_replica_labels", 5, BOOL, OPT),
        ("tsdb_infos", 6, MSG, REP, ".thanos.info.TSDBInfo"),
    ])
    message(info, "InfoResponse", [
        ("label_sets", 1, MSG, REP, ".thanos.ZLabelSet"),
        ("ComponentType", 2, STR, OPT),
        ("store", 3, MSG, OPT, ".thanos.info.StoreInfo"),
    ])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    pool.Add(info)
    return pool


def classes(pool):
    factory = message_factory.MessageFactory(pool)

    def get(name):
        desc = pool.FindMessageTypeByName(name)
        if hasattr(message_factory, "GetMessageClass"):
            return message_factory.GetMessageClass(desc)
        return factory.GetPrototype(desc)

    return get


def labels(ls):
    return {l.name: l.value for l in ls}


def chunk(c):
    out = {"min_time": c.min_time, "max_time": c.max_time}
    for part in ("raw", "count", "sum", "min", "max", "counter"):
        if c.HasField(part):
            ch = getattr(c, part)
            out[part] = {"type": ch.type, "data": ch.data.hex(), "hash": ch.hash}
    return out


def main():
    addr = sys.argv[1]
    get = classes(build_pool())
    ch = grpc.insecure_channel(addr, options=[("grpc.max_receive_message_length", 1 << 30)])

    def unary(path, req_cls, resp_cls, req):
        call = ch.unary_unary(path, request_serializer=req_cls.SerializeToString,
                              response_deserializer=resp_cls.FromString)
        return call(req, timeout=30)

    def series(**kw):
        req_cls = get("thanos.SeriesRequest")
        matcher = get("thanos.LabelMatcher")
        ms = [matcher(type=t, name=n, value=v) for (t, n, v) in kw.pop("matchers")]
        call = ch.unary_stream("/thanos.Store/Series", request_serializer=req_cls.SerializeToString,
                               response_deserializer=get("thanos.SeriesResponse").FromString)
        out = {"series": [], "warnings": [], "frames": 0}

        def add(s):
            out["series"].append({"labels": labels(s.labels), "chunks": [chunk(c) for c in s.chunks]})

        try:
            for resp in call(req_cls(matchers=ms, **kw), timeout=30):
                out["frames"] += 1
                kind = resp.WhichOneof("result")
                if kind == "series":
                    add(resp.series)
                elif kind == "batch":
                    for s in resp.batch.series:
                        add(s)
                elif kind == "warning":
                    out["warnings"].append(resp.warning)
        except grpc.RpcError as e:
            out["error"] = {"code": e.code().name, "message": e.details()}
        return out

    info = unary("/thanos.info.Info/Info", get("thanos.info.InfoRequest"),
                 get("thanos.info.InfoResponse"), get("thanos.info.InfoRequest")())
    result = {
        "info": {
            "component_type": info.ComponentType,
            "label_sets": [labels(s.labels) for s in info.label_sets],
            "has_store": info.HasField("store"),
            "min_time": info.store.min_time,
            "max_time": info.store.max_time,
            "tsdb_infos": len(info.store.tsdb_infos),
        },
        "all": series(min_time=-(1 << 63), max_time=(1 << 63) - 1, matchers=[(2, "__name__", ".+")]),
        "batched": series(min_time=-(1 << 63), max_time=(1 << 63) - 1, response_batch_size=5,
                          matchers=[(2, "__name__", ".+")]),
        "skip_chunks": series(min_time=0, max_time=(1 << 63) - 1, skip_chunks=True,
                              matchers=[(0, "__name__", "up"), (1, "instance", "b:1")]),
        "bad_regex": series(min_time=0, max_time=10, matchers=[(2, "job", "a(b")]),
    }
    names = unary("/thanos.Store/LabelNames", get("thanos.LabelNamesRequest"),
                  get("thanos.LabelNamesResponse"),
                  get("thanos.LabelNamesRequest")(start=-(1 << 63), end=(1 << 63) - 1))
    result["label_names"] = list(names.names)
    values = unary("/thanos.Store/LabelValues", get("thanos.LabelValuesRequest"),
                   get("thanos.LabelValuesResponse"),
                   get("thanos.LabelValuesRequest")(
                       label="instance", start=-(1 << 63), end=(1 << 63) - 1,
                       matchers=[get("thanos.LabelMatcher")(type=3, name="instance", value="a.*")]))
    result["label_values"] = list(values.values)
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
