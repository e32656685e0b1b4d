// The API reference: Scalar (@scalar/api-reference, pinned) rendering the server's own OpenAPI document. Its prebuilt
// browser bundle is copied into dist/vendor/ at build time (scripts/copy-vendor.mjs) and served by the server like the
// rest of the console; no font, script or proxy from elsewhere (the Content-Security-Policy would refuse them anyway).
import './reference.css';

interface ScalarGlobal {
  createApiReference: (selector: string, config: Record<string, unknown>) => unknown;
}

const script = document.createElement('script');
script.src = '/vendor/scalar/standalone.js';
script.onload = () => {
  const scalar = (window as unknown as { Scalar?: ScalarGlobal }).Scalar;
  if (scalar === undefined) throw new Error('the Scalar bundle did not load');
  scalar.createApiReference('#api-reference', {
    url: '/openapi/v1.json',
    withDefaultFonts: false,
    // The bundle's stylesheet still names its web font (Inter, from fonts.scalar.com, which the CSP refuses): the
    // machine's own fonts instead, so the page asks for nothing outside this server.
    customCss: ':root, .light-mode, .dark-mode { --scalar-font: system-ui, sans-serif; --scalar-font-code: ui-monospace, monospace; }',
    hideClientButton: true,
    telemetry: false,
    showDeveloperTools: 'never',
    agent: { disabled: true },
    mcp: { disabled: true },
  });
  document.body.dataset.ready = 'true';
};
document.head.append(script);
