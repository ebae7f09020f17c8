import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ROOT } from "../tools/harness";

/**
 * scripts/kind-up.sh and kind-down.sh against fake docker/kind/kubectl/helm (test/fixtures/fake-bin) that record
 * every call and keep just enough state: kind's local-registry pattern is applied as documented, and a second run
 * changes nothing it already did.
 */
function sandbox() {
    const state = fs.mkdtempSync(path.join(os.tmpdir(), "fx-kind-"));
    const env = {
        ...process.env,
        PATH: `${path.join(ROOT, "test/fixtures/fake-bin")}:${process.env.PATH}`,
        FAKE_STATE: state,
    };
    const run = (script: string) => execFileSync("bash", [path.join(ROOT, "scripts", script)], { env, stdio: "pipe" });
    const calls = () => fs.readFileSync(path.join(state, "calls.log"), "utf8").trim().split("\n");
    const read = (f: string) => fs.readFileSync(path.join(state, f), "utf8");
    return { state, env, run, calls, read };
}

describe("scripts/kind-up.sh", () => {
    test("starts the registry on 127.0.0.1:5001, creates the cluster with containerd's certs.d, maps 80/443", () => {
        const s = sandbox();
        s.run("kind-up.sh");
        const calls = s.calls();
        expect(calls).toContainEqual(
            "docker run -d --restart=always -p 127.0.0.1:5001:5000 --network bridge --name kind-registry registry:3.0.0",
        );
        const config = s.read("kind-config.yaml");
        expect(config).toContain('config_path = "/etc/containerd/certs.d"');
        expect(config).toMatch(/containerPort: 30080, hostPort: 80, listenAddress: "127.0.0.1"/);
        expect(config).toMatch(/containerPort: 30443, hostPort: 443, listenAddress: "127.0.0.1"/);
        // localhost:5001 inside the node is aliased to the registry container.
        expect(s.read("node/etc/containerd/certs.d/localhost:5001/hosts.toml")).toBe(
            '[host."http://kind-registry:5000"]\n',
        );
        expect(calls).toContainEqual("docker network connect kind kind-registry");
        const applied = s.read("applied.yaml");
        expect(applied).toContain("name: local-registry-hosting");
        expect(applied).toContain("namespace: kube-public");
        expect(applied).toContain('host: "localhost:5001"');
        const helm = calls.filter((c) => c.startsWith("helm upgrade --install"));
        expect(helm.map((c) => c.split(" ")[3])).toEqual(["traefik", "metrics-server"]);
        expect(helm[0]).toContain("--version 41.5.0");
        expect(helm[1]).toContain("--version 3.13.0");
    });

    test("a second run reuses the registry, the cluster and the network connection", () => {
        const s = sandbox();
        s.run("kind-up.sh");
        const first = s.calls().length;
        s.run("kind-up.sh");
        const second = s.calls().slice(first);
        expect(second.filter((c) => c.startsWith("docker run"))).toEqual([]);
        expect(second.filter((c) => c.startsWith("kind create"))).toEqual([]);
        expect(second.filter((c) => c.startsWith("docker network connect"))).toEqual([]);
        // What is declarative is applied again, harmlessly.
        expect(second.filter((c) => c.startsWith("helm upgrade --install"))).toHaveLength(2);
    });

    test("kind-down.sh removes the cluster and the registry, and is a no-op the second time", () => {
        const s = sandbox();
        s.run("kind-up.sh");
        s.run("kind-down.sh");
        expect(fs.existsSync(path.join(s.state, "cluster"))).toBe(false);
        expect(fs.existsSync(path.join(s.state, "registry"))).toBe(false);
        const before = s.calls().length;
        s.run("kind-down.sh");
        const again = s.calls().slice(before);
        expect(again.filter((c) => c.startsWith("kind delete") || c.startsWith("docker rm"))).toEqual([]);
    });

    test("a missing tool stops the script with an install hint before anything runs", () => {
        const s = sandbox();
        const env = { ...process.env, PATH: "/usr/bin:/bin", FAKE_STATE: s.state };
        let message = "";
        try {
            execFileSync("bash", [path.join(ROOT, "scripts/kind-up.sh")], { env, stdio: "pipe" });
        } catch (e) {
            message = String((e as { stderr: Buffer }).stderr);
        }
        expect(message).toMatch(/error: '(docker|kind)' is not installed: install/);
        expect(fs.existsSync(path.join(s.state, "calls.log"))).toBe(false);
    });
});

describe("scripts/dev-up.sh (the quick start's main job)", () => {
    test("brings up kind, logs in to a local file backend, then runs pulumi up on the dev stack", () => {
        const s = sandbox();
        s.run("dev-up.sh");
        const pulumi = s.calls().filter((c) => c.startsWith("pulumi "));
        expect(pulumi).toEqual([
            `pulumi login file://${ROOT}/.pulumi-state (passphrase set: yes)`,
            "pulumi stack select dev --create (passphrase set: yes)",
            "pulumi up --stack dev --yes (passphrase set: yes)",
            "pulumi stack output --stack dev (passphrase set: yes)",
        ]);
        // The cluster and its registry exist before the first pulumi command, on the cluster's own context.
        const calls = s.calls();
        expect(calls.findIndex((c) => c.startsWith("kind create"))).toBeLessThan(
            calls.findIndex((c) => c.startsWith("pulumi ")),
        );
        // The program names its cluster (kubeContext); nothing switches the user's current context.
        expect(calls.filter((c) => c.startsWith("kubectl config"))).toEqual([]);
        // The prerequisites are checked first: the Docker daemon before any cluster is created.
        expect(calls[0]).toBe("docker info");
    });

    test("a custom kind cluster name becomes the dev stack's kubeContext", () => {
        const s = sandbox();
        execFileSync("bash", [path.join(ROOT, "scripts/dev-up.sh")], {
            env: { ...s.env, KIND_CLUSTER_NAME: "mine" },
            stdio: "pipe",
        });
        expect(s.calls()).toContainEqual("pulumi config set kubeContext kind-mine --stack dev (passphrase set: yes)");
        expect(s.calls()).toContainEqual(
            "kind create cluster --name mine --image kindest/node:v1.34.0 --wait 120s --config=-",
        );
    });

    test("every missing prerequisite is named at once, with its install hint, before anything is created", () => {
        const s = sandbox();
        // Only a Docker CLI whose daemon is down and a Node.js older than 24; no pulumi, helm, kind or minikube.
        const bin = fs.mkdtempSync(path.join(os.tmpdir(), "fx-bin-"));
        for (const tool of ["docker", "node"]) {
            fs.symlinkSync(path.join(ROOT, "test/fixtures/fake-bin", tool), path.join(bin, tool));
        }
        const env = {
            ...process.env,
            PATH: `${bin}:/usr/bin:/bin`,
            FAKE_STATE: s.state,
            FAKE_DOCKER_DOWN: "1",
            FAKE_NODE_VERSION: "v20.19.0",
            FX_NODE_INSTALL: "0",
        };
        let message = "";
        try {
            execFileSync("bash", [path.join(ROOT, "scripts/dev-up.sh")], { env, stdio: "pipe" });
        } catch (e) {
            message = String((e as { stderr: Buffer }).stderr);
        }
        expect(message).toMatch(/^error: \d prerequisite\(s\) missing; nothing was created:/);
        for (const line of [
            "  - pulumi is not installed: install the Pulumi CLI 3.276.0: https://www.pulumi.com/docs/install/",
            "  - helm is not installed: install Helm 3: https://helm.sh/docs/intro/install/",
            "  - the Docker daemon is not running (docker info fails): start Docker Desktop or 'sudo systemctl start docker'",
            "  - neither kind nor minikube is installed: install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation) or minikube (https://minikube.sigs.k8s.io/docs/start/)",
            "  - Node.js 24 is needed (found v20.19.0): install it from https://nodejs.org/",
        ]) {
            expect(message.split("\n")).toContain(line);
        }
        // Neither cluster tool is said once, not again as a missing kind.
        expect(message).not.toContain("  - kind is not installed");
        // Nothing but the daemon probe ran.
        expect(s.calls()).toEqual(["docker info"]);
    });
});
