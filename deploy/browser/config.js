// STAC Browser runtime config, rendered by eomatch.stack.render. Do not edit by hand.
// The catalogue is the external API on the same origin the browser was loaded from.
window.STAC_BROWSER_CONFIG = {
    catalogUrl: window.location.origin + "/external/",
    catalogTitle: "eomatch matchups",
    allowExternalAccess: false,
    pathPrefix: "/",
    historyMode: "history",
    displayGeoTiffByDefault: false,
    // quicklooks (thumbnail assets) are framed pictures, not georeferenced images: shown on
    // item cards and the item page's Thumbnails tab, never stretched over the item's bbox
    displayPreview: false,
    showThumbnailsAsAssets: false,
    defaultThumbnailSize: [200, 200],
    itemsPerPage: 20,
    socialSharing: []
};
