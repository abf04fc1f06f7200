// Development default. In the container image nginx serves /config.js rendered at start-up
// from nginx/templates/config.js.template (env API_BASE_URL), so one image fits every environment.
window.__DRYDOCK_CONFIG__ = window.__DRYDOCK_CONFIG__ || { apiBaseUrl: "" };
