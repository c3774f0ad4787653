// placeholder replaced below
export async function benchCommand(_args: string[]): Promise<number> {
  return 1;
}
