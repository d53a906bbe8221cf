/** ImageZMQ's wire format (docs/compat.md, "ImageZMQ"): the hub endpoints and the sender. */
export { ImageZmqSender, type ImageZmqSenderOptions, type ImageZmqSenderStats } from './client.js';
export { type ImageZmqListener, imageZmqEndpoints, startImageZmqHub, startImageZmqSub } from './endpoint.js';
export { IZMQ_DEFAULT_PORT, IZMQ_OK, izmqStreamName } from './format.js';
