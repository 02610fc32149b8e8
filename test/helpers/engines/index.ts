/** Launches an engine behind the driver surface (driver.ts). */
import type { Engine, EngineName, EngineOptions } from './driver.ts';
import { launchChromiumEngine } from './chromium.ts';
import { launchFirefoxEngine } from './firefox.ts';
import { launchWebKitEngine } from './webkit.ts';

export * from './driver.ts';

export function launchEngine(name: EngineName, options: EngineOptions = {}): Promise<Engine> {
  switch (name) {
    case 'chromium':
      return launchChromiumEngine(options);
    case 'firefox':
      return launchFirefoxEngine(options);
    case 'webkit':
      return launchWebKitEngine(options);
  }
}
