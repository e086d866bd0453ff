// eomatch: run with node in the unpacked @radiantearth/stac-browser before `npm run build`
// (by eomatch.stack.browser and deploy/Dockerfile.browser). The stack must work
// air-gapped, so no page may fetch from another host:
// - schema validation is off (it fetches the STAC schemas from schemas.stacspec.org):
//   the "Valid" row of the Source popover is not rendered and /validation/... pages
//   show the object itself;
// - the search filter's queryables are dereferenced without external $refs (pgSTAC's
//   point at schemas.stacspec.org and geojson.org); they stay as they are, which is
//   what an air-gapped browser got anyway once those fetches failed.
// Fails if the source no longer matches.
'use strict';
const fs = require('fs');

const PATCHES = [
  ['src/components/Source.vue', '<b-row class="stac-valid">', '<b-row v-if="false" class="stac-valid">'],
  ['src/router/index.js',
    'component: () => import("../views/Validation.vue"),',
    'redirect: to => "/" + (to.params.pathMatch || ""),'],
  ['src/components/SearchFilter.vue',
    'schemas = await refParser.dereference(response.data);',
    'schemas = await refParser.dereference(response.data, {resolve: {external: false}});'],
  ['public/index.html',
    '<!-- <script defer="defer" src="/config.js"></script> -->',
    '<script defer="defer" src="/config.js"></script>'],
];

for (const [file, before, after] of PATCHES) {
  const text = fs.readFileSync(file, 'utf8');
  if (!text.includes(before)) {
    console.error(`offline-patch: '${before}' not found in ${file}`);
    process.exit(1);
  }
  fs.writeFileSync(file, text.replace(before, after));
}
