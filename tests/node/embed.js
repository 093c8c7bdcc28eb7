// Embed one text through the rag-factory sidecar from Node.js, using only protos/ and the npm gRPC packages.
//
// Usage: node embed.js HOST:PORT [TEXT] [--model REF] [--allow-fallback] [--routing-key KEY]
//
//   --model REF        model reference: a model id, "name@1.2.0", "name@alias" or "name" (default: the
//                      server's default model). An exact version "name@1.2.0" pins an index: it is never
//                      A/B routed.
//   --allow-fallback   let the server's default model answer if REF fails (EmbedRequest.allow_fallback);
//                      without it such a call fails with UNAVAILABLE, reason FALLBACK_REFUSED.
//   --routing-key KEY  stable key for A/B routing (EmbedRequest.routing_key).
//
// On success prints one JSON line and exits 0:
//   {dimension, count, model_id, version, variant, experiment, fallback, fallback_reason, requested_model,
//    first_values, vector}
// model_id is served_by.model_id: the model whose vectors these are, and so the index to search with them;
// it is not necessarily the model asked for (see fallback and experiment).
//
// On an RPC error prints one JSON line and exits 1:
//   {"error": {code, details, reason, domain, metadata}}
// code is the gRPC status name (e.g. "UNAVAILABLE"), details the server's message; reason, domain and
// metadata come from the google.rpc.ErrorInfo in the google.rpc.Status the server sends in the
// grpc-status-details-bin trailer (reason is null when there is none, e.g. a transport failure).
"use strict";

const path = require("node:path");
const { parseArgs } = require("node:util");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
// protobufjs is what @grpc/proto-loader is built on; take the copy it uses rather than adding a dependency.
const protobuf = require(
  require.resolve("protobufjs", { paths: [path.dirname(require.resolve("@grpc/proto-loader"))] }),
);

const PROTOS = path.resolve(__dirname, "..", "..", "protos");
const DEADLINE_MS = 30000;
const USAGE = "usage: node embed.js HOST:PORT [TEXT] [--model REF] [--allow-fallback] [--routing-key KEY]";

// The three messages of google/rpc/status.proto and google/rpc/error_details.proto (plus google.protobuf.Any)
// needed to read the error reason, with their field numbers from those files; none of the npm packages ships
// the .proto files themselves.
const RPC_STATUS = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        protobuf: { nested: { Any: { fields: { type_url: { type: "string", id: 1 }, value: { type: "bytes", id: 2 } } } } },
        rpc: {
          nested: {
            Status: {
              fields: {
                code: { type: "int32", id: 1 },
                message: { type: "string", id: 2 },
                details: { rule: "repeated", type: "google.protobuf.Any", id: 3 },
              },
            },
            ErrorInfo: {
              fields: {
                reason: { type: "string", id: 1 },
                domain: { type: "string", id: 2 },
                metadata: { keyType: "string", type: "string", id: 3 },
              },
            },
          },
        },
      },
    },
  },
});
const Status = RPC_STATUS.lookupType("google.rpc.Status");
const ErrorInfo = RPC_STATUS.lookupType("google.rpc.ErrorInfo");
const ERROR_INFO_TYPE_URL = "type.googleapis.com/google.rpc.ErrorInfo";

function loadEmbeddingService() {
  const definition = protoLoader.loadSync("rag_factory/v1/embedding.proto", {
    includeDirs: [PROTOS],
    keepCase: true, // field names exactly as in the .proto (served_by, model_id)
    enums: String, // enum values by name, e.g. "VARIANT_UNSPECIFIED"
    defaults: true, // unset fields come back as their zero values rather than missing
  });
  return grpc.loadPackageDefinition(definition).rag_factory.v1.EmbeddingService;
}

function parseCommandLine() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        model: { type: "string", default: "" },
        "allow-fallback": { type: "boolean", default: false },
        "routing-key": { type: "string", default: "" },
      },
    });
  } catch (error) {
    console.error(`${error.message}\n${USAGE}`);
    process.exit(2);
  }
  const [address, text = "Autophagy declines in aged organisms.", ...extra] = parsed.positionals;
  if (!address || extra.length > 0) {
    console.error(USAGE);
    process.exit(2);
  }
  const { model, "allow-fallback": allowFallback, "routing-key": routingKey } = parsed.values;
  return { address, text, model, allowFallback, routingKey };
}

// The ErrorInfo the server attached to a failed call, or null (no trailer, or no ErrorInfo in it).
function errorInfoOf(error) {
  const trailer = error.metadata ? error.metadata.get("grpc-status-details-bin") : [];
  if (trailer.length === 0) {
    return null;
  }
  const status = Status.decode(trailer[0]);
  const packed = status.details.find((any) => any.type_url === ERROR_INFO_TYPE_URL);
  return packed ? ErrorInfo.toObject(ErrorInfo.decode(packed.value), { defaults: true }) : null;
}

function describeError(error) {
  const info = errorInfoOf(error);
  return {
    code: grpc.status[error.code],
    details: error.details,
    reason: info ? info.reason : null,
    domain: info ? info.domain : null,
    metadata: info ? info.metadata : {},
  };
}

function main() {
  const { address, text, model, allowFallback, routingKey } = parseCommandLine();
  const EmbeddingService = loadEmbeddingService();
  const client = new EmbeddingService(address, grpc.credentials.createInsecure());
  const request = {
    texts: [text],
    model,
    routing_key: routingKey,
    allow_fallback: allowFallback,
    encoding: "VECTOR_ENCODING_REPEATED_FLOAT",
  };
  const deadline = new Date(Date.now() + DEADLINE_MS);
  client.Embed(request, { deadline }, (error, response) => {
    client.close();
    if (error) {
      const described = describeError(error);
      console.error(`Embed failed: ${described.code}: ${described.details}`);
      console.log(JSON.stringify({ error: described }));
      process.exitCode = 1; // not process.exit(): let stdout drain into a pipe first
      return;
    }
    const servedBy = response.served_by;
    const vector = response.vectors[0].values;
    console.log(
      JSON.stringify({
        dimension: response.dimension,
        count: response.count,
        // The vector space of `vector`, and so the index to search with it.
        model_id: servedBy.model_id,
        version: servedBy.version,
        variant: servedBy.variant,
        experiment: servedBy.experiment,
        fallback: servedBy.fallback,
        fallback_reason: servedBy.fallback_reason,
        requested_model: servedBy.requested_model,
        first_values: vector.slice(0, 5),
        vector,
      }),
    );
  });
}

main();
