// The mock push service for tests/test_alert_webpush.py: web-push-testing's own server (its
// src/server.js and src/PushApiModel.js, what its `start` command runs detached), run in the
// foreground instead, so the test owns its PID, on 127.0.0.1 only (the package's server listens on
// every interface), on a port the kernel picks (no race for a "free" port). Prints {"port": N} on
// one stdout line once it listens; exits when its stdin closes (the test, or pytest, went away).
'use strict';

const TestingServer = require('web-push-testing/src/server.js');
const {PushApiModel} = require('web-push-testing/src/PushApiModel.js');

const model = new PushApiModel();
const server = new TestingServer(model, 0);
server.setRequestHandlers();
const listener = server._app.listen(0, '127.0.0.1', () => {
	const {port} = listener.address();
	model.notifyUrl = `http://127.0.0.1:${port}/notify/`;
	process.stdout.write(JSON.stringify({port}) + '\n');
});
listener.on('error', err => {
	console.error(err);
	process.exit(1);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
