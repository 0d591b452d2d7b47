// The HSE model's pooled features computed by TensorFlow.js itself (its CPU backend), the
// runtime the model is published for: the reference that tests/test_hse.py checks against.
// Usage: node embed_faceres.js MODEL_DIR INPUT.f32 COUNT OUTPUT.f32
// INPUT holds COUNT x 224 x 224 x 3 little-endian float32 values, already preprocessed.
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const converter = require('@tensorflow/tfjs-converter');

async function main() {
  const [dir, input, count, output] = process.argv.slice(2);
  const model = JSON.parse(fs.readFileSync(path.join(dir, 'faceres.json')));
  const weightSpecs = model.weightsManifest.flatMap((group) => group.weights);
  const bytes = Buffer.concat(
    model.weightsManifest.flatMap((group) => group.paths.map((p) => fs.readFileSync(path.join(dir, p)))));
  const weightData = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  await tf.setBackend('cpu');
  const graph = await converter.loadGraphModel(
    tf.io.fromMemory({ modelTopology: model.modelTopology, weightSpecs, weightData }));
  const raw = fs.readFileSync(input);
  const pixels = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const features = graph.execute(tf.tensor4d(pixels, [Number(count), 224, 224, 3]), 'global_pooling/Mean');
  fs.writeFileSync(output, Buffer.from((await features.data()).buffer));
}

main().catch((error) => {
  console.error(`embed_faceres.js: ${error.message}`);
  process.exit(1);
});
