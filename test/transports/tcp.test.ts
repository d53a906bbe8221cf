/** The transport contract for tcp://. */
import { transportContract } from './contract.js';

transportContract({ scheme: 'tcp' });
