/* Links against the hex-looking names another library exports. */
extern int add(int a, int b);
extern int beef(int a);
extern int cafe;
int use_hex(int a) { return add(beef(a), cafe); }
