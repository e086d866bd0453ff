// eomatch: labels and units of the `matchup:` fields in STAC Browser (replaces the
// stock fields.config.js at build time, see eomatch.stack.browser). The catalogue stores
// seconds and fractions; people read minutes and percent, so those are converted here.
import { Registry } from '@radiantearth/stac-fields';

// A number rounded to `digits` decimals after scaling; anything else as it is.
const scaled = (factor, digits) => (value) => {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return String(value);
  }
  const p = Math.pow(10, digits);
  return String(Math.round(value * factor * p) / p);
};

Registry.addExtension('matchup', 'Matchups');
Registry.addMetadataFields({
  'matchup:type': { label: 'Item type' },
  'matchup:platforms': { label: 'Platforms' },
  'matchup:collections': { label: 'Product collections' },
  'matchup:products': { label: 'Products' },
  'matchup:event_id': { label: 'Event' },
  'matchup:time_diff_s': { label: 'Time difference (min)', formatter: scaled(1 / 60, 1) },
  'matchup:abs_time_diff_s': { label: 'Absolute time difference (min)', formatter: scaled(1 / 60, 1) },
  'matchup:overlap_fraction': { label: 'Overlap (%)', formatter: scaled(100, 1) },
  'matchup:overlap_km2': { label: 'Overlap area (km²)', formatter: scaled(1, 1) },
  'matchup:max_cloud_cover': { label: 'Max cloud cover (%)', formatter: scaled(1, 1) },
  'matchup:min_distance_km': { label: 'Closest approach of the tracks (km)', formatter: scaled(1, 1) },
  'matchup:solar_elevation_deg': { label: 'Solar elevation (°)', formatter: scaled(1, 1) },
  'matchup:sites': { label: 'Calibration sites' },
  'matchup:region_area_km2': { label: 'Collocation region area (km²)', formatter: scaled(1, 0) },
  'matchup:time_windows': { label: 'Time windows (UTC)' },
  'matchup:crosses_antimeridian': { label: 'Crosses the antimeridian' },
});
