/** A gauge labelled by `target` whose values are read when scraped: the shape most of /metrics has. */
import { Gauge, type Registry } from 'prom-client';

/** `values` gives [target, value] pairs at each scrape; an undefined value leaves the target's series out. */
export function targetGauge(
  registry: Registry,
  name: string,
  help: string,
  values: () => Iterable<readonly [string, number | undefined]> | Promise<Iterable<readonly [string, number | undefined]>>,
): void {
  new Gauge({
    name,
    help,
    labelNames: ['target'],
    registers: [registry],
    async collect() {
      const got = await values();
      this.reset();
      for (const [target, v] of got) if (v !== undefined) this.set({ target }, v);
    },
  });
}
