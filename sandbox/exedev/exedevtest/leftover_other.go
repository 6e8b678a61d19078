//go:build !linux

package exedevtest

func machineNS(*machine) string { return "" }
