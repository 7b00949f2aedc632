// The MongoDB-protocol test server (CongoDB, in memory, from npm
// @push.rocks/smartmongo@2.2.0; see README "MongoDB" for where it differs
// from real MongoDB). Usage: node start.mjs [PORT]
// Prints "READY mongodb://127.0.0.1:PORT" once it accepts connections.
import { CongoServer } from './vendor/package/dist_ts/congodb/index.js';

const port = parseInt(process.argv[2] || '27017', 10);
const server = new CongoServer({ port, host: '127.0.0.1', storage: 'memory' });
await server.start();
console.log('READY ' + server.getConnectionUri());
const stop = async () => { await server.stop(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
