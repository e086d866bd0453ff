// eomatch: the one basemap, served with the browser itself (replaces the stock
// basemaps.config.js at build time, see eomatch.stack.browser). No tile server: the
// land of Natural Earth 1:50m (public domain) from the npm package world-atlas (ISC),
// bundled as a chunk of its own and drawn as vectors, so no page asks another host.

export const SEA_COLOR = '#b7d3e6';
export const LAND_COLOR = '#e8e1c8';
const COAST_COLOR = '#8c8a7a';

const ATTRIBUTION = 'Land: Natural Earth 1:50m (public domain), via world-atlas (ISC)';

async function naturalEarthLayer(options) {
  const [
    { default: land },
    { default: TopoJSON },
    { default: VectorSource },
    { default: VectorLayer },
    { default: Feature },
    { fromExtent },
    { get: getProjection },
    { Fill, Stroke, Style },
  ] = await Promise.all([
    import(/* webpackChunkName: "basemap-land" */ 'world-atlas/land-50m.json'),
    import('ol/format/TopoJSON.js'),
    import('ol/source/Vector.js'),
    import('ol/layer/Vector.js'),
    import('ol/Feature.js'),
    import('ol/geom/Polygon.js'),
    import('ol/proj.js'),
    import('ol/style.js'),
  ]);
  const projection = options.projection;
  const features = new TopoJSON().readFeatures(land, { featureProjection: projection });
  const sea = new Feature(fromExtent(getProjection(projection).getExtent()));
  sea.set('eomatch:sea', true);
  const seaStyle = new Style({ fill: new Fill({ color: SEA_COLOR }), zIndex: 0 });
  const landStyle = new Style({
    fill: new Fill({ color: LAND_COLOR }),
    stroke: new Stroke({ color: COAST_COLOR, width: 0.5 }),
    zIndex: 1,
  });
  return new VectorLayer({
    source: new VectorSource({ features: [sea, ...features], attributions: ATTRIBUTION }),
    style: (feature) => (feature.get('eomatch:sea') ? seaStyle : landStyle),
    title: options.title,
    base: true,
    updateWhileInteracting: false,
  });
}

/**
 * STAC Browser calls this for every map; it builds an OpenLayers source of the class
 * named by `is` and a tile layer, then hands them to `layerCreated`, which returns the
 * layer shown instead. `XYZ` without a URL loads nothing, so only our vector layer draws.
 */
export default function configureBasemap() {
  return [
    {
      is: 'XYZ',
      title: 'Natural Earth',
      projection: 'EPSG:3857',
      attributions: ATTRIBUTION,
      layerCreated: async (layer, source, map) => naturalEarthLayer({ projection: 'EPSG:3857', title: 'Natural Earth', map }),
    },
  ];
}
