/* Exported names that read as hex numbers: `add`, `fadd`, `beef` (and `dead`, `cafe`). */
int add(int a, int b) { return a + b; }
float fadd(float a, float b) { return a + b; }
int beef(int a) { return a * 3; }
int dead, cafe = 7;
