// electron-builder's beforeBuild hook (electron-builder.yml): answering false tells electron-builder that node_modules
// are handled outside it, so it neither rebuilds nor collects any. The app needs none: main/build.mjs bundles the main
// process and the preload, vite the renderer. Without this hook and without the "!node_modules/**" pattern,
// electron-builder 26 packs the production dependencies it finds, falling back from the app directory (dist/, none)
// to the project's: the relay's smtp-server, better-sqlite3 built for Node, tsx, nodemailer... (seen in a --dir build:
// a 26 MB app.asar). test/console-s13-packaging.test.ts lists app.asar.
module.exports = async function beforeBuild() {
  return false;
};
