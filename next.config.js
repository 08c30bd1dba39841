/** @type {import('next').NextConfig} */
const config = {
  reactStrictMode: true,
  poweredByHeader: false,
  // The server (server/app.ts) sets security headers on every response, Next's included.
  typescript: { tsconfigPath: 'tsconfig.app.json' },
};

export default config;
