// Reads `count` events from an event stream with the eventsource npm package
// and prints each as a JSON line: node read-events.mjs URL COUNT TYPE...
import { EventSource } from "eventsource";

const [url, count, ...types] = process.argv.slice(2);
const source = new EventSource(url);
const timer = setTimeout(() => {
  console.error(`timed out after reading ${seen} events`);
  process.exit(2);
}, 10000);
let seen = 0;

function print(event) {
  const line = { type: event.type, data: event.data, id: event.lastEventId };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  seen += 1;
  if (seen >= Number(count)) {
    source.close();
    clearTimeout(timer);
  }
}

for (const type of types) {
  source.addEventListener(type, print);
}
