/*
 * Test vectors for test_kdf.c, copied from OpenSSL 3.5.7's test data
 * (build/src/openssl-3.5.7/test/recipes/30-test_evp_data/) and RFC 8448:
 * the QEMU guest has only the test binaries, so they are embedded here.
 * Hex strings; line numbers name the stanza ("KDF = ..." line) they are from.
 */

#ifndef TEST_KDF_VECTORS_H
#define TEST_KDF_VECTORS_H

/*
 * evpkdf_tls13_kdf.txt: the stanzas at lines 21-107 (first session) and
 * 118-203 (second session), SHA-256, and 4837-4922 (a SHA-384 session):
 * each session runs early secret -> handshake secret -> master secret and
 * the traffic/exporter/resumption secrets, every output the next input.
 * key_token: the key is passed as a token (it has a token length); the
 * 33-byte (EC)DHE inputs of the second session are passed raw, with the
 * salt still a token.  A salt is always a token.  Extract stanzas carry
 * the label "derived" (the first stanza has none in the file: it has no
 * salt, so no label is used).
 */
struct t13_vector {
    int          line;
    unsigned     md;
    unsigned     mode;
    int          key_token;
    const char  *label;
    const char  *key;
    const char  *salt;
    const char  *data;
    const char  *out;
};

static const struct t13_vector  t13_vectors[] = {
    { 21, KS_MD_SHA256, KS_KDF_EXTRACT_ONLY, 1, "derived",
      "f8af6aea2d397baf2948a25b2834200692cff17eee9165e4e27babee9edefd05",
      "",
      "",
      "153b6394a9c03cf3f5accc6e455a7693281138a1bcfa3803c26735dd1194d216" },
    { 27, KS_MD_SHA256, KS_KDF_EXPAND_ONLY, 1, "c e traffic",
      "153b6394a9c03cf3f5accc6e455a7693281138a1bcfa3803c26735dd1194d216",
      "",
      "7c92f68bd5bf3638ea338a6494722e1b44127e1b7e8aad535f2322a644ff22b3",
      "c80583a90e995c489600492a5da642e6b1f679ba674828792df087b939636171" },
    { 36, KS_MD_SHA256, KS_KDF_EXPAND_ONLY, 1, "e exp master",
      "153b6394a9c03cf3f5accc6e455a7693281138a1bcfa3803c26735dd1194d216",
      "",
      "7c92f68bd5bf3638ea338a6494722e1b44127e1b7e8aad535f2322a644ff22b3",
      "1fe336ab43b4a69b11ebc64c8343ed21a9c7f6724702d9d63970e8ff72a4bde7" },
    { 45, KS_MD_SHA256, KS_KDF_EXTRACT_ONLY, 1, "derived",
      "8e27fad32236cb11bb497eb878d636c3f1599f5ffdfae784cbf73e74746769d4",
      "153b6394a9c03cf3f5accc6e455a7693281138a1bcfa3803c26735dd1194d216",
      "",
      "cbb0740fd37e5eff32b76cf88511eb83fc9694da4130ca48de754c7f80f561bd" },
    { 54, KS_MD_SHA256, KS_KDF_EXPAND_ONLY, 1, "c hs traffic",
      "cbb0740fd37e5eff32b76cf88511eb83fc9694da4130ca48de754c7f80f561bd",
      "",
      "78d80b86fb9b089fb73375e51ae5bcfd742df4cadbd84dea0aaa0ac9d07ba6dc",
      "c2451ee08fd221331f3dabada534393ed1fc8f5983afa251c1d004ec94e823a2" },
    { 63, KS_MD_SHA256, KS_KDF_EXPAND_ONLY, 1, "s hs traffic",
      "cbb0740fd37e5eff32b76cf88511eb83fc9694da4130ca48de754c7f80f561bd",
      "",
      "78d80b86fb9b089fb73375e51ae5bcfd742df4cadbd84dea0aaa0ac9d07ba6dc",
      "40eefbf66cb79c41c9ee1bf0be7f41696da165e7e69628ca8e342fee51827abd" },
    { 72, KS_MD_SHA256, KS_KDF_EXTRACT_ONLY, 0, "derived",
      "",
      "cbb0740fd37e5eff32b76cf88511eb83fc9694da4130ca48de754c7f80f561bd",
      "",
      "9bdaae0c714cdbd47dd27dd7e37a1b4e5cf82fcaead2389cd71e6de12470ee17" },
    { 80, KS_MD_SHA256, KS_KDF_EXPAND_ONLY, 1, "c ap traffic",
      "9bdaae0c714cdbd47dd27dd7e37a1b4e5cf82fcaead2389cd71e6de12470ee17",
      "",
      "fb3e78c3924a01fe4bf912bff8ddb120848ddf3e4b3cdd2cd661abbeff16a96e",
      "b162c65cdc0f9425aa7cd8fb30a821c8c8f0e8f8f9eb42209d10d784dafadcb5" },
    { 89, KS_MD_SHA256, KS_KDF_EXPAND_ONLY, 1, "s ap traffic",
      "9bdaae0c714cdbd47dd27dd7e37a1b4e5cf82fcaead2389cd71e6de12470ee17",
      "",
      "fb3e78c3924a01fe4bf912bff8ddb120848ddf3e4b3cdd2cd661abbeff16a96e",
      "6fe71fd9a81dffb3fecedd80c7a4801804116c79bc37b3605f54bc01a9cbed99" },
    { 98, KS_MD_SHA256, KS_KDF_EXPAND_ONLY, 1, "exp master",
      "9bdaae0c714cdbd47dd27dd7e37a1b4e5cf82fcaead2389cd71e6de12470ee17",
      "",
      "fb3e78c3924a01fe4bf912bff8ddb120848ddf3e4b3cdd2cd661abbeff16a96e",
      "eb1069417c771402a32b4797099adc449fd2be22ac47fb771ccd319e1a11ce55" },
    { 107, KS_MD_SHA256, KS_KDF_EXPAND_ONLY, 1, "res master",
      "9bdaae0c714cdbd47dd27dd7e37a1b4e5cf82fcaead2389cd71e6de12470ee17",
      "",
      "db603b863e82a12147bd81a8e715d3273efe641d467436309e19ae0254461a35",
      "b4face4931df0e3380830805af22055bf29b030988a9e278f7d04f2b00f323e8" },
    { 118, KS_MD_SHA256, KS_KDF_EXTRACT_ONLY, 0, "derived",
      "",
      "",
      "",
      "33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a" },
    { 123, KS_MD_SHA256, KS_KDF_EXPAND_ONLY, 1, "c e traffic",
      "33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a",
      "",
      "ad5c61780c37f5dbe1666e846ffcbfe0694e6d7ee87fc855850cd961420a0da2",
      "265aa1591dd7b8046d95580c5dec47f4f175cd3121afc066ab65b14c2ff2eeec" },
    { 132, KS_MD_SHA256, KS_KDF_EXPAND_ONLY, 1, "e exp master",
      "33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a",
      "",
      "ad5c61780c37f5dbe1666e846ffcbfe0694e6d7ee87fc855850cd961420a0da2",
      "dfeadee3e4cd8d260ae389043e5f806ea55ee332270487289abaf3933ec219ed" },
    { 141, KS_MD_SHA256, KS_KDF_EXTRACT_ONLY, 0, "derived",
      "8ba75a8cee15fe15599cec2d6590313ca4cf2efd7aed87a85ed4cbcbdc5edf9b"
      "b1",
      "33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a",
      "",
      "7a6d31fe71da649e8e8168a42c5ab12c668f39499df77bc94405853530b85702" },
    { 150, KS_MD_SHA256, KS_KDF_EXPAND_ONLY, 1, "c hs traffic",
      "7a6d31fe71da649e8e8168a42c5ab12c668f39499df77bc94405853530b85702",
      "",
      "fc732c631dec5b82edae0288d698f0ab1823128d73ee370864cc0edc69b1dd15",
      "f1f7241a9c150b2a9e1e20f00ba42c038688468167201cae15a51f83ddd8520b" },
    { 159, KS_MD_SHA256, KS_KDF_EXPAND_ONLY, 1, "s hs traffic",
      "7a6d31fe71da649e8e8168a42c5ab12c668f39499df77bc94405853530b85702",
      "",
      "fc732c631dec5b82edae0288d698f0ab1823128d73ee370864cc0edc69b1dd15",
      "38f88680f83f4cbc7afc2e58c7161076da181185009074b5f576c61643bc2e55" },
    { 168, KS_MD_SHA256, KS_KDF_EXTRACT_ONLY, 0, "derived",
      "",
      "7a6d31fe71da649e8e8168a42c5ab12c668f39499df77bc94405853530b85702",
      "",
      "160f1552154d4be73bcdbcea0dca9594c86b319cf3b052e1e8b080f0b0f128ce" },
    { 176, KS_MD_SHA256, KS_KDF_EXPAND_ONLY, 1, "c ap traffic",
      "160f1552154d4be73bcdbcea0dca9594c86b319cf3b052e1e8b080f0b0f128ce",
      "",
      "127da44d7325927afc7f81b2108b006dd843f05011f4ddb6408c82a0a11da070",
      "e8634a48b7162c0c0d55afea28af35f06fcbbd268328bd6a9034b6fcddc48bb2" },
    { 185, KS_MD_SHA256, KS_KDF_EXPAND_ONLY, 1, "s ap traffic",
      "160f1552154d4be73bcdbcea0dca9594c86b319cf3b052e1e8b080f0b0f128ce",
      "",
      "127da44d7325927afc7f81b2108b006dd843f05011f4ddb6408c82a0a11da070",
      "1f5f7e35b4495e94f2b847129e246d98cc67d511729ed9ce60fa3c8176a7c41d" },
    { 194, KS_MD_SHA256, KS_KDF_EXPAND_ONLY, 1, "exp master",
      "160f1552154d4be73bcdbcea0dca9594c86b319cf3b052e1e8b080f0b0f128ce",
      "",
      "127da44d7325927afc7f81b2108b006dd843f05011f4ddb6408c82a0a11da070",
      "ff76b85accc260ce264686e011c9ab08e955cd01943d8c03989ac060ea4ad12e" },
    { 203, KS_MD_SHA256, KS_KDF_EXPAND_ONLY, 1, "res master",
      "160f1552154d4be73bcdbcea0dca9594c86b319cf3b052e1e8b080f0b0f128ce",
      "",
      "26872f541995715cbf7fcdd26544cfeff9fdff638578d166851127fb8a91ade7",
      "9d0a1aa3ed67e5bd066e61f15fdfd7a552bea57aed956af3f8b49abc2a9480b7" },
    { 4837, KS_MD_SHA384, KS_KDF_EXTRACT_ONLY, 0, "derived",
      "",
      "",
      "",
      "7ee8206f5570023e6dc7519eb1073bc4e791ad37b5c382aa10ba18e2357e7169"
      "71f9362f2c2fe2a76bfd78dfec4ea9b5" },
    { 4842, KS_MD_SHA384, KS_KDF_EXPAND_ONLY, 1, "c e traffic",
      "7ee8206f5570023e6dc7519eb1073bc4e791ad37b5c382aa10ba18e2357e7169"
      "71f9362f2c2fe2a76bfd78dfec4ea9b5",
      "",
      "1b49e91af94aa5b311518149a28aba1a0f22dfefb7e9cb1e38cae86451cbcebd"
      "a3f94193398ae2b109831fc4ce3b6dfe",
      "9c5f3f76bd2ec1e2cce62de12f6502c3588e52585d1cb2d35d4b4ca80cb98acd"
      "77b545275fd1021118c41b13ec14faca" },
    { 4851, KS_MD_SHA384, KS_KDF_EXPAND_ONLY, 1, "e exp master",
      "7ee8206f5570023e6dc7519eb1073bc4e791ad37b5c382aa10ba18e2357e7169"
      "71f9362f2c2fe2a76bfd78dfec4ea9b5",
      "",
      "1b49e91af94aa5b311518149a28aba1a0f22dfefb7e9cb1e38cae86451cbcebd"
      "a3f94193398ae2b109831fc4ce3b6dfe",
      "a4a4fe8b35f44a35be31b532937514de2f79a7fa0db63241463ec04be6eb2e56"
      "288d579af1160c12d5218e42c921cfb3" },
    { 4860, KS_MD_SHA384, KS_KDF_EXTRACT_ONLY, 1, "derived",
      "219eb41da6bbbe2f14de92589983c15c6b84119ce6c515f32d1850835d73e8d6",
      "7ee8206f5570023e6dc7519eb1073bc4e791ad37b5c382aa10ba18e2357e7169"
      "71f9362f2c2fe2a76bfd78dfec4ea9b5",
      "",
      "431b7156622cc17132aa45139f01c9516abd140a5b15f7bac80be758f3447e7a"
      "31213aa83c6fc6e84436447b3c4dc717" },
    { 4869, KS_MD_SHA384, KS_KDF_EXPAND_ONLY, 1, "c hs traffic",
      "431b7156622cc17132aa45139f01c9516abd140a5b15f7bac80be758f3447e7a"
      "31213aa83c6fc6e84436447b3c4dc717",
      "",
      "5b83ca74e83eacdda37b6a858e8bc05af8723e926ede3af9306a5d5057242b4c"
      "ec28cfc092b31096ef52856ddec7d96d",
      "9cd9027a2964c3b088f7f7b870b1fe8a490f08951228e28dbddd6fcece8871d4"
      "f76d087caf4eea780707d4094f7c6d3c" },
    { 4878, KS_MD_SHA384, KS_KDF_EXPAND_ONLY, 1, "s hs traffic",
      "431b7156622cc17132aa45139f01c9516abd140a5b15f7bac80be758f3447e7a"
      "31213aa83c6fc6e84436447b3c4dc717",
      "",
      "5b83ca74e83eacdda37b6a858e8bc05af8723e926ede3af9306a5d5057242b4c"
      "ec28cfc092b31096ef52856ddec7d96d",
      "77e5a6b8b7f8ecd805953b2fe7a0e71ede9216d09a6d7f82aecc9bf30c60039c"
      "7571164d192f5a1df0a4960afe8cc0d8" },
    { 4887, KS_MD_SHA384, KS_KDF_EXTRACT_ONLY, 0, "derived",
      "",
      "431b7156622cc17132aa45139f01c9516abd140a5b15f7bac80be758f3447e7a"
      "31213aa83c6fc6e84436447b3c4dc717",
      "",
      "6547c5bdc85b07b114ba5146f6eba34092ac27625897146b922d56da379a41bf"
      "8011fa8d2e88fa02065677fc7c930907" },
    { 4895, KS_MD_SHA384, KS_KDF_EXPAND_ONLY, 1, "c ap traffic",
      "6547c5bdc85b07b114ba5146f6eba34092ac27625897146b922d56da379a41bf"
      "8011fa8d2e88fa02065677fc7c930907",
      "",
      "95033d93b572219981af9a974d9cc2d78cde24fb39e13766c304c53597843ff5"
      "4ab0c91fa6174611b16da5271dce79c7",
      "be7f1f64963b74fff1aaecb5c9983692d1f2bb3dd71feeddd9f890eeda29d311"
      "793ded08b7bd9c4399e5bc20c5ec7d81" },
    { 4904, KS_MD_SHA384, KS_KDF_EXPAND_ONLY, 1, "s ap traffic",
      "6547c5bdc85b07b114ba5146f6eba34092ac27625897146b922d56da379a41bf"
      "8011fa8d2e88fa02065677fc7c930907",
      "",
      "95033d93b572219981af9a974d9cc2d78cde24fb39e13766c304c53597843ff5"
      "4ab0c91fa6174611b16da5271dce79c7",
      "eec520009350bd7c53c88bc30bb65e94bdb5a883dd386a454a557c457db49eb3"
      "d2725daaa7152fd893fd6367bff5c533" },
    { 4913, KS_MD_SHA384, KS_KDF_EXPAND_ONLY, 1, "exp master",
      "6547c5bdc85b07b114ba5146f6eba34092ac27625897146b922d56da379a41bf"
      "8011fa8d2e88fa02065677fc7c930907",
      "",
      "95033d93b572219981af9a974d9cc2d78cde24fb39e13766c304c53597843ff5"
      "4ab0c91fa6174611b16da5271dce79c7",
      "0c529fb71c21986c91c4f2d47b5502065ba9ac2ac65559f1db6e1a09b9b36b6f"
      "4cbed7bb347a690b5b23c76f77afc6b5" },
    { 4922, KS_MD_SHA384, KS_KDF_EXPAND_ONLY, 1, "res master",
      "6547c5bdc85b07b114ba5146f6eba34092ac27625897146b922d56da379a41bf"
      "8011fa8d2e88fa02065677fc7c930907",
      "",
      "5371106674e76ed37b98539d231b84a663abe1818125034e91b2debc4280ba94"
      "2381c0426e338d43951e5206a09f30d2",
      "7eacca12e407d32a062bc0aabbcbc9d32953cd50b131fcc63d34e5a4b2003470"
      "98001b6e43c28a68705edac3c967285b" },
};

/* evpkdf_hkdf.txt, RFC 5869 test cases 1-3 (SHA-256): the stanzas at
 * lines 16 (extract-and-expand), 23 (extract-only), 30 (expand-only),
 * 37 (case 2, extract-and-expand) and 58 (case 3: no salt, no info). */
#define HKDF1_IKM   "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"
#define HKDF1_SALT  "000102030405060708090a0b0c"
#define HKDF1_INFO  "f0f1f2f3f4f5f6f7f8f9"
#define HKDF1_PRK   "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
#define HKDF1_OKM   "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf" \
                    "34007208d5b887185865"
#define HKDF2_IKM   "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" \
                    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f" \
                    "404142434445464748494a4b4c4d4e4f"
#define HKDF2_SALT  "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f" \
                    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f" \
                    "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
#define HKDF2_INFO  "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf" \
                    "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef" \
                    "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
#define HKDF2_OKM   "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c" \
                    "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71" \
                    "cc30c58179ec3e87c14c01d5c1f3434f1d87"
#define HKDF3_OKM   "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d" \
                    "9d201395faa4b61a96c8"

/* evpkdf_tls12_prf.txt (SHA-256, NIST vectors): line 17 (master secret:
 * label, client random, server random) and line 26 (key expansion: label,
 * server random, client random; 128 bytes).  evpkdf_tls11_prf.txt uses
 * MD5-SHA1, which the keystore does not offer (TLS 1.0/1.1 are off). */
#define PRF_PMS     "f8938ecc9edebc5030c0c6a441e213cd24e6f770a50dda07876f8d55da062bca" \
                    "db386b411fd4fe4313a604fce6c17fbc"
#define PRF_MS_CR   "36c129d01a3200894b9179faac589d9835d58775f9b5ea3587cb8fd0364cae8c"
#define PRF_MS_SR   "f6c9575ed7ddd73e1f7d16eca115415812a43c2b747daaaae043abfb50053fce"
#define PRF_MS      "202c88c00f84a17a20027079604787461176455539e705be730890602c289a50" \
                    "01e34eeb3a043e5d52a65e66125188bf"
#define PRF_KB_SR   "ae6c806f8ad4d80784549dff28a4b58fd837681a51d928c3e30ee5ff14f39868"
#define PRF_KB_CR   "62e1fd91f23f558a605f28478c58cf72637b89784d959df7e946d3f07bd1b616"
#define PRF_KB      "d06139889fffac1e3a71865f504aa5d0d2a2e89506c6f2279b670c3e1b74f531" \
                    "016a2530c51a3a0f7e1d6590d0f0566b2f387f8d11fd4f731cdd572d2eae927f" \
                    "6f2f81410b25e6960be68985add6c38445ad9f8c64bf8068bf9a6679485d966f" \
                    "1ad6f68b43495b10a683755ea2b858d70ccac7ec8b053c6bd41ca299d4e51928"

/*
 * RFC 8448, section 3 "Simple 1-RTT Handshake" (X25519, AES-128-GCM,
 * SHA-256).  The transcript hashes are those of the trace's messages:
 * CH..SH (traffic secrets), CH..CertificateVerify (server Finished),
 * CH..server Finished (client Finished, application secrets).
 */
#define R_ECDHE     "8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d"
#define R_EARLY     "33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a"
#define R_HS        "1dc826e93606aa6fdc0aadc12f741b01046aa6b99f691ed221a9f0ca043fbeac"
#define R_TH_SH     "860c06edc07858ee8e78f0e7428c58edd6b43f2ca3e6e95f02ed063cf0e1cad8"
#define R_C_HS      "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21"
#define R_S_HS      "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38"
#define R_MASTER    "18df06843d13a08bf2a449844c5f8a478001bc4d4c627984d5a41da8d0402919"
#define R_S_HS_KEY  "3fce516009c21727d0f2e4e86ee403bc"
#define R_S_HS_IV   "5d313eb2671276ee13000b30"
#define R_C_HS_KEY  "dbfaa693d1762c5b666af5d950258d01"
#define R_C_HS_IV   "5bd3c71b836e0b76bb73265f"
#define R_S_FIN_KEY "008d3b66f816ea559f96b537e885c31fc068bf492c652f01f288a1d8cdc19fc8"
#define R_C_FIN_KEY "b80ad01015fb2f0bd65ff7d4da5d6bf83f84821d1f87fdc7d3c75b5a7b42d9c4"
#define R_TH_CV     "edb7725fa7a3473b031ec8ef65a2485493900138a2b91291407d7951a06110ed"
#define R_S_FIN     "9b9b141d906337fbd2cbdce71df4deda4ab42c309572cb7fffee5454b78f0718"
#define R_TH_SF     "9608102a0f1ccc6db6250b7b7e417b1a000eaada3daae4777a7686c9ff83df13"
#define R_C_FIN     "a8ec436d677634ae525ac1fcebe11a039ec17694fac6e98527b642f2edd5ce61"
#define R_C_AP      "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5"
#define R_S_AP      "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643"
#define R_EXP       "fe22f881176eda18eb8f44529e6792c50c9a3f89452f68d8ae311b4309d3cf50"
#define R_S_AP_KEY  "9f02283b6c9c07efc26bb9f2ac92e356"
#define R_S_AP_IV   "cf782b88dd83549aadf1e984"
#define R_C_AP_KEY  "17422dda596ed5d9acd890e3c63f5051"
#define R_C_AP_IV   "5b78923dee08579033e523d9"

#endif /* TEST_KDF_VECTORS_H */
