// Embed one text through the rag-factory sidecar from Node.js, using only protos/ and the npm gRPC packages.
//
// Usage: node embed.js HOST:PORT [TEXT]
// Prints one JSON line: {dimension, count, model_id, version, variant, first_values, vector}.
"use strict";

const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTOS = path.resolve(__dirname, "..", "..", "protos");
const DEADLINE_MS = 30000;

function loadEmbeddingService() {
  const definition = protoLoader.loadSync("rag_factory/v1/embedding.proto", {
    includeDirs: [PROTOS],
    keepCase: true, // field names exactly as in the .proto (served_by, model_id)
    enums: String, // enum values by name, e.g. "VARIANT_UNSPECIFIED"
    defaults: true, // unset fields come back as their zero values rather than missing
  });
  return grpc.loadPackageDefinition(definition).rag_factory.v1.EmbeddingService;
}

function main() {
  const [address, text = "Autophagy declines in aged organisms."] = process.argv.slice(2);
  if (!address) {
    console.error("usage: node embed.js HOST:PORT [TEXT]");
    process.exit(2);
  }
  const EmbeddingService = loadEmbeddingService();
  const client = new EmbeddingService(address, grpc.credentials.createInsecure());
  const request = { texts: [text], encoding: "VECTOR_ENCODING_REPEATED_FLOAT" };
  const deadline = new Date(Date.now() + DEADLINE_MS);
  client.Embed(request, { deadline }, (error, response) => {
    client.close();
    if (error) {
      console.error(`Embed failed: ${grpc.status[error.code]}: ${error.details}`);
      process.exit(1);
    }
    const vector = response.vectors[0].values;
    console.log(
      JSON.stringify({
        dimension: response.dimension,
        count: response.count,
        model_id: response.served_by.model_id,
        version: response.served_by.version,
        variant: response.served_by.variant,
        first_values: vector.slice(0, 5),
        vector,
      }),
    );
  });
}

main();
