// Added by scripts/tools.sh to the command of sigs.k8s.io/kube-network-policies v0.8.0 (not upstream code): a
// --kubeconfig flag, so that the command runs on the test node as a host process, outside any pod. Without the flag
// it reads the in-cluster configuration, as upstream does.
package main

import (
	"flag"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

var kubeconfig string

func init() {
	flag.StringVar(&kubeconfig, "kubeconfig", "", "Path to a kubeconfig file; the in-cluster configuration when empty")
}

// restConfig is the in-cluster configuration unless --kubeconfig names a file.
func restConfig(inCluster func() (*rest.Config, error)) (*rest.Config, error) {
	if kubeconfig == "" {
		return inCluster()
	}
	return clientcmd.BuildConfigFromFlags("", kubeconfig)
}
