'use strict';
// Preloaded into kinesis-mock (`node -r ./kinesis-bind.cjs main.js`).
//
// kinesis-local (kinesis-mock's Node build) hard-codes its bind address to
// 0.0.0.0 and has no env var to change it: for a wildcard host it calls
// `server.listen(port, cb)`, which listens on every interface. This shim
// rewrites such listen() calls to bind KINESIS_MOCK_BIND_HOST (default
// 127.0.0.1) instead, without patching the vendored main.js.
const net = require('net');

const HOST = process.env.KINESIS_MOCK_BIND_HOST || '127.0.0.1';
const WILDCARD = new Set(['', '0.0.0.0', '::', '[::]']);
const origListen = net.Server.prototype.listen;

net.Server.prototype.listen = function listen(...args) {
  const a0 = args[0];
  const isPort = typeof a0 === 'number' || (typeof a0 === 'string' && /^\d+$/.test(a0));
  if (isPort) {
    if (typeof args[1] !== 'string') args.splice(1, 0, HOST);
    else if (WILDCARD.has(args[1])) args[1] = HOST;
  } else if (a0 && typeof a0 === 'object' && a0.path === undefined && a0.port !== undefined) {
    if (a0.host === undefined || WILDCARD.has(a0.host)) args[0] = { ...a0, host: HOST };
  }
  return origListen.apply(this, args);
};
