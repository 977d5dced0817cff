// repwatch command line; filled in by the CLI work.
int main() { return 0; }
