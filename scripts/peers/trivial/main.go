// Command trivial does nothing: scripts/bench.sh times its start to know
// what starting any Go process costs on this machine.
package main

func main() {}
