// Composition root: the architecture table of the README as components wired by their outputs.
import { loadConfig } from "./components/config";
import { Namespaces } from "./components/namespaces";
import { Secrets } from "./components/secrets";

const config = loadConfig();

const namespaces = new Namespaces("fx", { app: config.namespace, monitoring: config.monitoringNamespace });
const secrets = new Secrets("fx", { config, namespace: namespaces.app, monitoringNamespace: namespaces.monitoring });

export const namespace = namespaces.app;
export const monitoringNamespace = namespaces.monitoring;
export const grafanaAdminSecret = secrets.grafanaAdminSecretName;
